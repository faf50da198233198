//! A customer's currency decides which prices bill it: only its plans' prices in that currency
//! do (docs/scenario-format.md, "Currencies"). So a customer keeps a currency every plan of its
//! subscriptions and billed resources has prices in, as a subscription to a plan needs one.

use billow_billing::world::CustomerWorld;
use billow_core::Currency;
use billow_store::WorkspaceId;

use super::Checks;
use crate::error::ApiError;
use crate::state::AppState;

/// Fails `currency` in `checks` when a plan version the customer's subscriptions (their changes
/// included) or billed resources use has no price in `currency`.
pub(super) async fn check_currency_change(
    state: &AppState,
    workspace: &WorkspaceId,
    customer_id: &str,
    currency: Currency,
    checks: &mut Checks,
) -> Result<(), ApiError> {
    let Some(world) = CustomerWorld::load(&state.billing, workspace, customer_id).await? else {
        return Ok(());
    };
    for version in world.versions.values() {
        let plan = &version.spec;
        if let Err(error) = plan.check_priced_in(currency, currency) {
            let priced_in: Vec<&str> = error.priced_in.iter().map(|c| c.code()).collect();
            checks.fail(
                "currency",
                format!(
                    "plan `{}` (version {}), which the customer's subscriptions or resources use, has no price in {currency}; its prices are in {}",
                    plan.key,
                    version.version,
                    priced_in.join(", ")
                ),
            );
            return Ok(());
        }
    }
    Ok(())
}
