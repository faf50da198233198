//! The request bodies of the invoice routes (finalize, void, credit notes, payments), as the
//! handlers parse them and as `/api/v1/openapi.json` documents them: one type for both, so the
//! document cannot drift from what is parsed; and the lists' cursor parameter.

use billow_billing::payment::PAYMENT_STATES;
use rust_decimal::Decimal;
use serde::Deserialize;
use utoipa::ToSchema;

use crate::error::ApiError;

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
