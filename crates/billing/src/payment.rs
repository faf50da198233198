//! Payment providers: who collects an invoice's money. The manual provider puts bank-transfer
//! instructions on the invoice; an operator records the transfer through the API
//! (`POST /api/v1/invoices/{id}/payments`).

use serde::Serialize;

/// The payment states of an invoice's history (Palette's names).
pub const PAYMENT_STATES: [&str; 4] = [
    "PaymentPending",
    "PaymentInProgress",
    "Paid",
    "PaymentFailed",
];

/// What the customer is told about paying one invoice.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct PaymentInstructions {
    /// The provider's name (`manual`).
    pub provider: &'static str,
    /// How to pay, for a human.
    pub text: String,
    /// The reference the payer must quote (the invoice number).
    pub reference: String,
}

/// Collects invoices' money.
pub trait PaymentProvider: std::fmt::Debug + Send + Sync {
    /// The provider's name.
    fn name(&self) -> &'static str;

    /// How to pay the invoice numbered `number` (or, for a draft, its id) of `amount`.
    fn instructions(&self, reference: &str, amount: &str) -> PaymentInstructions;
}

/// Bank transfers, recorded by an operator.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ManualProvider {
    /// The account the customer transfers to, as printed on the invoice.
    pub bank_account: String,
}

impl Default for ManualProvider {
    fn default() -> Self {
        Self {
            bank_account: "the bank account given in your contract".to_owned(),
        }
    }
}

impl PaymentProvider for ManualProvider {
    fn name(&self) -> &'static str {
        "manual"
    }

    fn instructions(&self, reference: &str, amount: &str) -> PaymentInstructions {
        PaymentInstructions {
            provider: self.name(),
            text: format!(
                "Transfer {amount} to {} quoting invoice {reference}.",
                self.bank_account
            ),
            reference: reference.to_owned(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manual_instructions_name_the_amount_account_and_reference() {
        let provider = ManualProvider {
            bank_account: "IBAN DE00 1234".to_owned(),
        };

        let instructions = provider.instructions("#7", "41.29 EUR");

        assert_eq!(
            instructions.text,
            "Transfer 41.29 EUR to IBAN DE00 1234 quoting invoice #7."
        );
        assert_eq!(instructions.provider, "manual");
    }
}
