//! Credit grants: allowances in money or in a meter's unit, burned in a defined order.
//!
//! Burn order: the earliest expiry first (grants without expiry last), then the lowest priority
//! number, then the grant's key. A grant covers usage whose service period overlaps its
//! `[start, expiry)` window. Consumption never exceeds the remaining balance, and never exceeds
//! what is asked for, so no line is made negative by a credit.

use jiff::Timestamp;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use crate::period::Period;

/// Why a grant was given; decides how its consumption is reported.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(feature = "utoipa", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum GrantType {
    /// Free credits of the plan (Palette's free credits).
    Free,
    /// Credits owed for a missed service level.
    Sla,
    /// Credits the customer paid for in advance.
    Prepaid,
    /// Marketing credits.
    Promotional,
}

impl GrantType {
    /// True for credits that cost the customer nothing (all but prepaid).
    pub fn is_free(self) -> bool {
        !matches!(self, GrantType::Prepaid)
    }
}

/// A credit grant.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreditGrant {
    /// The grant's key.
    pub key: String,
    /// Why it was given.
    #[serde(rename = "type")]
    pub grant_type: GrantType,
    /// `None`: money in the invoice currency; `Some(meter)`: units of that meter (CPU-core-hours).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub meter: Option<String>,
    /// How much was granted.
    #[serde(deserialize_with = "crate::decimal::exact")]
    pub amount: Decimal,
    /// When it starts to apply.
    pub start: Timestamp,
    /// When it stops applying; `None` never.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expiry: Option<Timestamp>,
    /// Among grants expiring together, lower numbers burn first.
    #[serde(default)]
    pub priority: u32,
}

impl CreditGrant {
    /// The grant's window `[start, expiry)`.
    pub fn window(&self) -> Period {
        Period {
            start: self.start,
            end: self.expiry.unwrap_or(Timestamp::MAX),
        }
    }
}

/// A grant with what is left of it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GrantBalance {
    /// The grant.
    pub grant: CreditGrant,
    /// What is left: minor units for money grants, meter units otherwise.
    pub remaining: Decimal,
}

/// How much of one grant one line consumed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "utoipa", derive(utoipa::ToSchema))]
pub struct GrantConsumption {
    /// The grant's key.
    pub grant: String,
    /// Its type.
    #[serde(rename = "type")]
    pub grant_type: GrantType,
    /// The amount consumed: minor units for money, meter units otherwise.
    #[cfg_attr(feature = "utoipa", schema(value_type = crate::schema::DecimalText))]
    pub amount: Decimal,
}

/// Puts balances in burn order.
pub fn sort_in_burn_order(balances: &mut [GrantBalance]) {
    balances.sort_by(|a, b| {
        let key = |g: &CreditGrant| (g.expiry.unwrap_or(Timestamp::MAX), g.priority);
        key(&a.grant)
            .cmp(&key(&b.grant))
            .then_with(|| a.grant.key.cmp(&b.grant.key))
    });
}

/// Consumes up to `wanted` from the grants in `meter`'s unit (or money, for `None`) whose window
/// overlaps `service`, in the order of `balances` (see [`sort_in_burn_order`]).
pub fn consume(
    balances: &mut [GrantBalance],
    meter: Option<&str>,
    service: Period,
    wanted: Decimal,
) -> Vec<GrantConsumption> {
    let mut left = wanted.max(Decimal::ZERO);
    let mut consumed = Vec::new();
    for balance in balances.iter_mut() {
        if left.is_zero() {
            break;
        }
        let eligible = balance.grant.meter.as_deref() == meter
            && balance.remaining > Decimal::ZERO
            && balance.grant.window().overlaps(&service);
        if !eligible {
            continue;
        }
        let take = left.min(balance.remaining);
        balance.remaining -= take;
        left -= take;
        consumed.push(GrantConsumption {
            grant: balance.grant.key.clone(),
            grant_type: balance.grant.grant_type,
            amount: take,
        });
    }
    debug_assert!(consumed.iter().map(|c| c.amount).sum::<Decimal>() <= wanted.max(Decimal::ZERO));
    consumed
}

/// What is available to `meter`'s usage in `service` before consumption.
pub fn available(balances: &[GrantBalance], meter: Option<&str>, service: Period) -> Decimal {
    balances
        .iter()
        .filter(|b| b.grant.meter.as_deref() == meter && b.grant.window().overlaps(&service))
        .map(|b| b.remaining)
        .sum()
}

/// Palette's per-product credit figures for one period, in the meter's unit.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "utoipa", derive(utoipa::ToSchema))]
pub struct CreditUsageReport {
    /// The meter (product).
    pub meter: String,
    /// Credits available at the start of the period.
    #[cfg_attr(feature = "utoipa", schema(value_type = crate::schema::DecimalText))]
    pub allocated: Decimal,
    /// Usage in the period.
    #[cfg_attr(feature = "utoipa", schema(value_type = crate::schema::DecimalText))]
    pub used: Decimal,
    /// Usage covered by free, SLA and promotional credits.
    #[cfg_attr(feature = "utoipa", schema(value_type = crate::schema::DecimalText))]
    pub free: Decimal,
    /// Usage covered by prepaid credits.
    #[cfg_attr(feature = "utoipa", schema(value_type = crate::schema::DecimalText))]
    pub prepaid: Decimal,
    /// Usage not covered by free credits (`used − free`).
    #[cfg_attr(feature = "utoipa", schema(value_type = crate::schema::DecimalText))]
    pub billable: Decimal,
    /// Usage beyond every credit (`used − free − prepaid`): what the usage line charges.
    #[cfg_attr(feature = "utoipa", schema(value_type = crate::schema::DecimalText))]
    pub breached: Decimal,
    /// The allowed overage, in percent of `allocated`.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "utoipa", schema(value_type = Option<crate::schema::DecimalText>))]
    pub overage_limit_percent: Option<Decimal>,
    /// True when `breached` exceeds the allowed overage.
    pub overage_limit_exceeded: bool,
}

impl CreditUsageReport {
    /// Builds the report from usage, what was allocated and what was consumed.
    pub fn new(
        meter: &str,
        allocated: Decimal,
        used: Decimal,
        consumed: &[GrantConsumption],
        overage_limit_percent: Option<Decimal>,
    ) -> CreditUsageReport {
        let free: Decimal = consumed
            .iter()
            .filter(|c| c.grant_type.is_free())
            .map(|c| c.amount)
            .sum();
        let prepaid: Decimal = consumed
            .iter()
            .filter(|c| !c.grant_type.is_free())
            .map(|c| c.amount)
            .sum();
        let breached = used - free - prepaid;
        let overage_limit_exceeded = overage_limit_percent
            .is_some_and(|percent| breached > allocated * percent / Decimal::ONE_HUNDRED);
        CreditUsageReport {
            meter: meter.to_owned(),
            allocated,
            used,
            free,
            prepaid,
            billable: used - free,
            breached,
            overage_limit_percent,
            overage_limit_exceeded,
        }
    }
}

#[cfg(test)]
mod tests {
    use rust_decimal_macros::dec;

    use super::*;

    fn grant(
        key: &str,
        grant_type: GrantType,
        amount: Decimal,
        expiry: Option<&str>,
        priority: u32,
    ) -> GrantBalance {
        GrantBalance {
            grant: CreditGrant {
                key: key.into(),
                grant_type,
                meter: Some("cpu".into()),
                amount,
                start: "2024-01-01T00:00:00Z".parse().unwrap(),
                expiry: expiry.map(|e| e.parse().unwrap()),
                priority,
            },
            remaining: amount,
        }
    }

    fn january() -> Period {
        Period::new(
            "2024-01-01T00:00:00Z".parse().unwrap(),
            "2024-02-01T00:00:00Z".parse().unwrap(),
        )
        .unwrap()
    }

    #[test]
    fn grants_burn_earliest_expiry_first_then_by_priority() {
        let mut balances = vec![
            grant("never", GrantType::Prepaid, dec!(100), None, 0),
            grant(
                "late",
                GrantType::Free,
                dec!(10),
                Some("2024-12-31T00:00:00Z"),
                0,
            ),
            grant(
                "soon-low",
                GrantType::Sla,
                dec!(10),
                Some("2024-06-01T00:00:00Z"),
                2,
            ),
            grant(
                "soon-high",
                GrantType::Free,
                dec!(10),
                Some("2024-06-01T00:00:00Z"),
                1,
            ),
        ];
        sort_in_burn_order(&mut balances);
        let consumed = consume(&mut balances, Some("cpu"), january(), dec!(25));
        let order: Vec<_> = consumed
            .iter()
            .map(|c| (c.grant.as_str(), c.amount))
            .collect();
        assert_eq!(
            order,
            vec![
                ("soon-high", dec!(10)),
                ("soon-low", dec!(10)),
                ("late", dec!(5))
            ]
        );
    }

    #[test]
    fn consumption_never_exceeds_the_grant_or_the_usage() {
        let mut balances = vec![grant("g", GrantType::Free, dec!(10), None, 0)];
        let consumed = consume(&mut balances, Some("cpu"), january(), dec!(4));
        assert_eq!(consumed[0].amount, dec!(4));
        assert_eq!(balances[0].remaining, dec!(6));
        let consumed = consume(&mut balances, Some("cpu"), january(), dec!(100));
        assert_eq!(consumed[0].amount, dec!(6));
        assert_eq!(balances[0].remaining, dec!(0));
    }

    #[test]
    fn expired_and_foreign_grants_are_not_consumed() {
        let mut balances = vec![grant(
            "old",
            GrantType::Free,
            dec!(10),
            Some("2024-01-01T00:00:00Z"),
            0,
        )];
        assert!(consume(&mut balances, Some("cpu"), january(), dec!(5)).is_empty());
        let mut balances = vec![grant("cpu", GrantType::Free, dec!(10), None, 0)];
        assert!(consume(&mut balances, Some("gpu"), january(), dec!(5)).is_empty());
    }

    #[test]
    fn the_report_splits_free_prepaid_and_breached_usage() {
        let consumed = vec![
            GrantConsumption {
                grant: "f".into(),
                grant_type: GrantType::Free,
                amount: dec!(100),
            },
            GrantConsumption {
                grant: "p".into(),
                grant_type: GrantType::Prepaid,
                amount: dec!(50),
            },
        ];
        let report = CreditUsageReport::new("cpu", dec!(150), dec!(180), &consumed, Some(dec!(10)));
        assert_eq!(
            (
                report.free,
                report.prepaid,
                report.billable,
                report.breached
            ),
            (dec!(100), dec!(50), dec!(80), dec!(30))
        );
        assert!(report.overage_limit_exceeded);
    }

    proptest::proptest! {
        #[test]
        fn consumption_never_exceeds_what_was_granted(
            amounts in proptest::collection::vec(1_i64..10_000, 1..6),
            requests in proptest::collection::vec(0_i64..20_000, 1..12),
        ) {
            let mut balances: Vec<GrantBalance> = amounts
                .iter()
                .enumerate()
                .map(|(index, amount)| grant(&format!("g{index}"), GrantType::Free, Decimal::from(*amount), None, index as u32))
                .collect();
            sort_in_burn_order(&mut balances);
            let mut consumed_by_grant = std::collections::BTreeMap::<String, Decimal>::new();
            for wanted in requests {
                let consumed = consume(&mut balances, Some("cpu"), january(), Decimal::from(wanted));
                let total: Decimal = consumed.iter().map(|c| c.amount).sum();
                proptest::prop_assert!(total <= Decimal::from(wanted));
                for consumption in consumed {
                    *consumed_by_grant.entry(consumption.grant).or_default() += consumption.amount;
                }
            }
            for (index, amount) in amounts.iter().enumerate() {
                let used = consumed_by_grant.get(&format!("g{index}")).copied().unwrap_or_default();
                proptest::prop_assert!(used <= Decimal::from(*amount));
            }
            for balance in &balances {
                proptest::prop_assert!(balance.remaining >= Decimal::ZERO);
            }
        }
    }
}
