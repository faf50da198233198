//! The bodies of the invoice routes, as the handlers parse and write them and as
//! `/api/v1/openapi.json` documents them: one type for both, so the document cannot drift from
//! what is parsed or answered; and the lists' cursor parameter.

use std::borrow::Cow;

use billow_billing::payment::{PaymentInstructions, PAYMENT_STATES};
use billow_core::credit::CreditUsageReport;
use billow_core::invoice::{InvoiceTotals, LineKind};
use billow_core::scenario::{InvoiceReason, InvoiceScope};
use billow_core::{Currency, Money, RoundingMode};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use utoipa::openapi::schema::{ObjectBuilder, Type};
use utoipa::openapi::{RefOr, Schema};
use utoipa::{PartialSchema, ToSchema};

use crate::error::ApiError;
use crate::wire::invoice::{ComputedInvoice, InvoiceLine, Period};
use crate::wire::{Instant, Page};

/// An invoice: what it bills (its lines and their traces), its amounts and where it is in its
/// life.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = Invoice)]
pub(crate) struct InvoiceBody {
    #[schema(example = "inv_01jd0m7x9q3k8w2v5t6r4y1z0a")]
    pub id: String,
    /// The gap-free number given when it was finalized; `null` while a draft.
    pub number: Option<i64>,
    pub customer_id: String,
    /// Whom it bills: one subscription, or the customer as a whole.
    pub scope: InvoiceScope,
    /// The subscription of a subscription's invoice; `null` on the customer's invoice.
    pub subscription_id: Option<String>,
    /// The subscriptions it has lines of.
    pub subscriptions: Vec<String>,
    /// The plan version of a subscription's invoice; `null` on the customer's invoice, whose
    /// lines each name their product.
    pub plan_version_id: Option<String>,
    /// Why it was issued.
    pub reason: InvoiceReason,
    pub status: InvoiceStatus,
    /// When it was issued: the end of the period it closes, or the instant of the change that
    /// issued it.
    pub issued_at: Instant,
    /// The billing period it closes.
    pub period: Period,
    /// The currency of every amount.
    pub currency: Currency,
    /// How its lines were rounded to the minor unit (the workspace's setting when it was
    /// computed; a finalized invoice keeps it).
    pub rounding: RoundingMode,
    /// The sum of its lines, tax included.
    pub total: Money,
    /// What its credit notes took off, tax included.
    pub credited: Money,
    /// What the customer owes: `total` less `credited`.
    pub amount_due: Money,
    /// What is still to pay: `amount_due` until it is paid or void, then zero.
    pub amount_remaining: Money,
    /// Its lines, each with how its amount came about.
    pub lines: Vec<InvoiceLine>,
    /// Its amounts by kind of line, project, subscription, resource type and product.
    pub totals: InvoiceTotals,
    /// Per-product credit figures (allocated, used, billable, breached).
    pub credit_usage: Vec<CreditUsageReport>,
    pub created_at: Instant,
    /// When it was finalized; `null` while a draft.
    pub finalized_at: Option<Instant>,
    /// When payment is due; `null` for drafts.
    pub due_at: Option<Instant>,
    /// How to pay it: only on an open invoice with something still to pay.
    pub payment_instructions: Option<PaymentInstructionsBody>,
}

/// Where an invoice is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub(crate) enum InvoiceStatus {
    /// Computed, not final: it follows late usage until it is finalized.
    Draft,
    /// Finalized and numbered, awaiting payment.
    Open,
    Paid,
    /// Canceled after it was finalized.
    Void,
}

impl From<billow_store::invoices::InvoiceStatus> for InvoiceStatus {
    fn from(status: billow_store::invoices::InvoiceStatus) -> Self {
        use billow_store::invoices::InvoiceStatus as Stored;
        match status {
            Stored::Draft => Self::Draft,
            Stored::Open => Self::Open,
            Stored::Paid => Self::Paid,
            Stored::Void => Self::Void,
        }
    }
}

/// The scope of a stored invoice in the core's words.
pub(crate) fn scope(scope: billow_store::invoices::InvoiceScope) -> InvoiceScope {
    use billow_store::invoices::InvoiceScope as Stored;
    match scope {
        Stored::Subscription => InvoiceScope::Subscription,
        Stored::Customer => InvoiceScope::Customer,
    }
}

/// How to pay an invoice, from its payment provider.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = PaymentInstructions)]
pub(crate) struct PaymentInstructionsBody {
    /// The provider's name (`manual`).
    pub provider: &'static str,
    /// How to pay, for a human.
    pub text: String,
    /// The reference the payer must quote: the invoice's number.
    pub reference: String,
}

impl From<PaymentInstructions> for PaymentInstructionsBody {
    fn from(instructions: PaymentInstructions) -> Self {
        let PaymentInstructions {
            provider,
            text,
            reference,
        } = instructions;
        Self {
            provider,
            text,
            reference,
        }
    }
}

/// A credit note: a correction of a finalized invoice, which takes its total off what is due.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = CreditNote)]
pub(crate) struct CreditNoteBody {
    #[schema(example = "cn_01jd0m7x9q3k8w2v5t6r4y1z0a")]
    pub id: String,
    pub invoice_id: String,
    /// The sum of its lines.
    pub total: Money,
    pub lines: Vec<CreditedLine>,
    /// Why the invoice was credited.
    pub reason: Option<String>,
    pub created_at: Instant,
}

/// One line of a credit note.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct CreditedLine {
    /// On a credit note a billing run wrote for late usage that lowered a finalized invoice:
    /// `adjustment` for the usage, `tax` for its tax. Absent on the lines of an operator's
    /// credit note.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kind: Option<LineKind>,
    pub description: String,
    /// How much it credits, in the invoice's currency, positive.
    pub amount: Money,
    /// The invoice line it corrects; `null` when it names none.
    pub line: Option<u32>,
    /// The service period of the late usage it credits.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub period: Option<Period>,
    /// The key of the late-usage adjustment it credits.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub adjustment: Option<String>,
}

/// One line of a credit note as it is stored: written by `POST …/credit-notes` (`description`,
/// `amount`, `line`) or by a billing run (`kind`, `description`, `amount`, `period`,
/// `adjustment`; `billow_billing::late_credit`).
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct StoredCreditedLine {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<LineKind>,
    pub description: String,
    pub amount: Money,
    #[serde(default)]
    pub line: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub period: Option<billow_core::Period>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub adjustment: Option<String>,
}

impl From<StoredCreditedLine> for CreditedLine {
    fn from(line: StoredCreditedLine) -> Self {
        let StoredCreditedLine {
            kind,
            description,
            amount,
            line,
            period,
            adjustment,
        } = line;
        Self {
            kind,
            description,
            amount,
            line,
            period: period.map(Period::from),
            adjustment,
        }
    }
}

/// An invoice's payment-state history, oldest first, with the invoice's status.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct PaymentHistory {
    pub invoice_id: String,
    /// The invoice's status after these states (`Paid` makes it `paid`).
    pub status: InvoiceStatus,
    #[serde(flatten)]
    pub page: Page<PaymentEntry>,
}

/// One payment state of an invoice's history.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct PaymentEntry {
    #[schema(value_type = PaymentState)]
    pub state: String,
    /// The note recorded with it (a bank reference, a failure reason).
    pub message: Option<String>,
    /// When it was recorded.
    pub at: Instant,
}

/// A payment state (Palette's names): every finalized invoice starts `PaymentPending`.
pub(crate) struct PaymentState;

impl PartialSchema for PaymentState {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .enum_values(Some(PAYMENT_STATES))
            .into()
    }
}

impl ToSchema for PaymentState {
    fn name() -> Cow<'static, str> {
        "PaymentState".into()
    }
}

/// The invoices a customer's open periods would produce if they closed now.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct UpcomingInvoices {
    /// The instant they were computed at.
    pub now: Instant,
    #[serde(flatten)]
    pub page: Page<ComputedInvoice>,
}

/// One invoice of a customer's billing history: its amounts and status, without its lines.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct BillingHistoryEntry {
    #[schema(example = "inv_01jd0m7x9q3k8w2v5t6r4y1z0a")]
    pub id: String,
    pub number: Option<i64>,
    pub status: InvoiceStatus,
    pub issued_at: Instant,
    pub due_at: Option<Instant>,
    pub period: Period,
    pub total: Money,
    pub credited: Money,
    pub amount_due: Money,
    pub amount_remaining: Money,
}

/// `POST /api/v1/invoices/{id}/finalize`: no fields yet. The body may be empty or `{}`; any field
/// is a 422, so that a field added later is never silently ignored by an older server.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct FinalizeInvoice {}

/// `POST /api/v1/invoices/{id}/void`: no fields yet. The body may be empty or `{}`; any field is
/// a 422.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct VoidInvoice {}

/// `POST /api/v1/invoices/{id}/credit-notes`: credits part of a finalized invoice. The
/// invoice's credit notes together never credit more than its total.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct CreateCreditNote {
    /// 1 to 100 lines.
    #[schema(min_items = 1, max_items = 100)]
    pub lines: Vec<CreditNoteLine>,
    /// Why the invoice is credited, for people.
    #[serde(default)]
    #[schema(example = "SLA breach in March")]
    pub reason: Option<String>,
}

/// One line of a credit note.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct CreditNoteLine {
    /// What is credited, not empty.
    #[schema(example = "Outage credit")]
    pub description: String,
    /// How much, positive, in major units of the invoice's currency and at most its minor-unit
    /// precision (`"5.00"`). A JSON number is read digit for digit, as the `Decimal` schema says.
    #[serde(deserialize_with = "billow_core::decimal::exact")]
    #[schema(value_type = billow_core::schema::DecimalText)]
    pub amount: Decimal,
    /// The number of the invoice line it corrects (1-based, as the invoice's lines are numbered).
    #[serde(default)]
    #[schema(minimum = 1)]
    pub line: Option<u32>,
}

/// `POST /api/v1/invoices/{id}/payments`: a payment state of the invoice, recorded by an
/// operator (manual provider).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct RecordPayment {
    /// The new state; `Paid` marks the invoice paid.
    pub state: RecordedPaymentState,
    /// A note kept in the payment history (a bank reference, a failure reason).
    #[serde(default)]
    #[schema(example = "wire announced")]
    pub message: Option<String>,
}

/// The payment states an operator may record (Palette's names); `PaymentPending` is the state
/// every finalized invoice starts in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, ToSchema)]
pub(crate) enum RecordedPaymentState {
    PaymentInProgress,
    Paid,
    PaymentFailed,
}

impl RecordedPaymentState {
    /// The state's name as the payment history stores it.
    pub(crate) fn as_str(self) -> &'static str {
        let name = match self {
            Self::PaymentInProgress => "PaymentInProgress",
            Self::Paid => "Paid",
            Self::PaymentFailed => "PaymentFailed",
        };
        debug_assert!(PAYMENT_STATES[1..].contains(&name));
        name
    }
}

/// The `starting_after` parameter of the invoice lists, which until this release were paged with
/// `cursor`: either name is taken for one release (an empty value is no value, as on the other
/// native lists), both with the same value too; both with different values is a 422 naming
/// `cursor`, since no page can start after two invoices.
pub(crate) fn starting_after(
    starting_after: Option<String>,
    cursor: Option<String>,
) -> Result<Option<String>, ApiError> {
    let given = |value: Option<String>| value.filter(|id| !id.is_empty());
    match (given(starting_after), given(cursor)) {
        (Some(current), Some(deprecated)) if current != deprecated => Err(ApiError::invalid(
            "cursor",
            "is the deprecated name of `starting_after` and may not differ from it; send only \
             `starting_after`",
        )),
        (current, deprecated) => Ok(current.or(deprecated)),
    }
}

/// How the OpenAPI document describes the deprecated `cursor` parameter.
pub(crate) const CURSOR_DEPRECATED: &str =
    "Deprecated: the former name of `starting_after`, accepted \
    until the next release. Both given with different values is a 422 naming `cursor`.";

pub(crate) use crate::json::parse_optional;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_empty_body_and_an_empty_object_both_finalize() {
        assert!(parse_optional::<FinalizeInvoice>(b"").is_ok());
        assert!(parse_optional::<FinalizeInvoice>(b" \n").is_ok());
        assert!(parse_optional::<FinalizeInvoice>(b"{}").is_ok());
    }

    #[test]
    fn an_unknown_field_of_a_void_body_is_named() {
        let error = parse_optional::<VoidInvoice>(br#"{"reason": "duplicate"}"#).unwrap_err();

        let ApiError::Validation(errors) = error else {
            panic!("{error:?}")
        };
        assert_eq!(errors[0].field, "reason");
    }

    #[test]
    fn starting_after_or_its_former_name_cursor_starts_a_page() {
        let id = |text: &str| Some(text.to_owned());

        assert_eq!(starting_after(id("inv_2"), None).unwrap(), id("inv_2"));
        assert_eq!(starting_after(None, id("inv_2")).unwrap(), id("inv_2"));
        assert_eq!(
            starting_after(id("inv_2"), id("inv_2")).unwrap(),
            id("inv_2")
        );
        assert_eq!(starting_after(id(""), id("inv_2")).unwrap(), id("inv_2"));
        assert_eq!(starting_after(None, None).unwrap(), None);
    }

    #[test]
    fn starting_after_and_cursor_that_differ_are_refused_naming_cursor() {
        let error = starting_after(Some("inv_2".into()), Some("inv_1".into())).unwrap_err();

        let ApiError::Validation(errors) = error else {
            panic!("{error:?}")
        };
        assert_eq!(errors[0].field, "cursor");
    }

    #[test]
    fn every_recorded_payment_state_is_a_payment_state() {
        for state in [
            RecordedPaymentState::PaymentInProgress,
            RecordedPaymentState::Paid,
            RecordedPaymentState::PaymentFailed,
        ] {
            assert!(PAYMENT_STATES.contains(&state.as_str()));
        }
    }
}
