//! `billow preview --check`: compares a preview with the scenario's `expect` block.

use std::fmt;

use rust_decimal::Decimal;
use serde_json::Value;

use super::engine::{IssuedInvoice, Preview};
use super::{Expectations, ExpectedInvoice};
use crate::decimal::decimal_from_json;

/// One difference between what was expected and what billow produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mismatch {
    /// Where (`invoices[1].lines[2].amount`).
    pub path: String,
    /// What the scenario expects.
    pub expected: String,
    /// What billow produced.
    pub actual: String,
}

impl fmt::Display for Mismatch {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            formatter,
            "{}: expected {}, got {}",
            self.path, self.expected, self.actual
        )
    }
}

/// Compares `preview` with `expect`; an empty list means they agree.
pub fn check_expectations(preview: &Preview, expect: &Expectations) -> Vec<Mismatch> {
    let mut mismatches = Vec::new();
    check_list(
        "invoices",
        &preview.invoices,
        &expect.invoices,
        &mut mismatches,
    );
    if let Some(upcoming) = &expect.upcoming {
        check_list("upcoming", &preview.upcoming, upcoming, &mut mismatches);
    }
    mismatches
}

fn mismatch(
    out: &mut Vec<Mismatch>,
    path: String,
    expected: impl fmt::Display,
    actual: impl fmt::Display,
) {
    out.push(Mismatch {
        path,
        expected: expected.to_string(),
        actual: actual.to_string(),
    });
}

/// Expected invoices that name a subscription and an issue time are found by them; the others are
/// taken by position, and then the counts must agree.
fn check_list(
    name: &str,
    actual: &[IssuedInvoice],
    expected: &[ExpectedInvoice],
    out: &mut Vec<Mismatch>,
) {
    let keyed = expected
        .iter()
        .all(|e| e.subscription.is_some() && e.issued_at.is_some());
    if !keyed && actual.len() != expected.len() {
        mismatch(out, format!("{name}.length"), expected.len(), actual.len());
    }
    for (index, want) in expected.iter().enumerate() {
        let path = format!("{name}[{index}]");
        let found = if keyed {
            actual.iter().find(|a| {
                Some(&a.key) == want.subscription.as_ref()
                    && Some(a.invoice.issued_at) == want.issued_at
            })
        } else {
            actual.get(index)
        };
        match found {
            Some(invoice) => check_invoice(&path, invoice, want, out),
            None => mismatch(
                out,
                path,
                format!(
                    "an invoice ({} at {})",
                    want.subscription.as_deref().unwrap_or("any subscription"),
                    want.issued_at
                        .map_or("any time".to_owned(), |t| t.to_string())
                ),
                "none",
            ),
        }
    }
}

fn same(expected: Decimal, actual: Decimal) -> bool {
    expected.normalize() == actual.normalize()
}

fn check_invoice(
    path: &str,
    actual: &IssuedInvoice,
    want: &ExpectedInvoice,
    out: &mut Vec<Mismatch>,
) {
    let invoice = &actual.invoice;
    if let Some(subscription) = &want.subscription {
        if subscription != &actual.key {
            mismatch(
                out,
                format!("{path}.subscription"),
                subscription,
                &actual.key,
            );
        }
    }
    if let Some(issued_at) = want.issued_at {
        if issued_at != invoice.issued_at {
            mismatch(
                out,
                format!("{path}.issued_at"),
                issued_at,
                invoice.issued_at,
            );
        }
    }
    if let Some(total) = want.total {
        if !same(total, invoice.totals.total.to_decimal()) {
            mismatch(
                out,
                format!("{path}.total"),
                total,
                invoice.totals.total.to_decimal(),
            );
        }
    }
    for (name, value) in &want.totals {
        let actual_value = match name.as_str() {
            "subtotal" => invoice.totals.subtotal,
            "discount" => invoice.totals.discount,
            "credit" => invoice.totals.credit,
            "tax" => invoice.totals.tax,
            "total" => invoice.totals.total,
            other => {
                mismatch(
                    out,
                    format!("{path}.totals.{other}"),
                    "a known total (subtotal, discount, credit, tax, total)",
                    "unknown name",
                );
                continue;
            }
        };
        compare_value(
            out,
            format!("{path}.totals.{name}"),
            value,
            actual_value.to_decimal(),
        );
    }
    if let Some(lines) = &want.lines {
        if lines.len() != invoice.lines.len() {
            let described: Vec<String> = invoice
                .lines
                .iter()
                .map(|l| format!("{} {}", l.description, l.amount.to_decimal()))
                .collect();
            mismatch(
                out,
                format!("{path}.lines.length"),
                lines.len(),
                format!("{} ({})", invoice.lines.len(), described.join("; ")),
            );
        }
        for (index, (want_line, line)) in lines.iter().zip(&invoice.lines).enumerate() {
            let line_path = format!("{path}.lines[{index}]");
            let kind = serde_json::to_value(line.kind)
                .ok()
                .and_then(|v| v.as_str().map(str::to_owned))
                .unwrap_or_default();
            if want_line.kind.as_ref().is_some_and(|k| k != &kind) {
                mismatch(
                    out,
                    format!("{line_path}.kind"),
                    want_line.kind.as_deref().unwrap_or_default(),
                    kind,
                );
            }
            if want_line
                .description
                .as_ref()
                .is_some_and(|d| d != &line.description)
            {
                mismatch(
                    out,
                    format!("{line_path}.description"),
                    want_line.description.as_deref().unwrap_or_default(),
                    &line.description,
                );
            }
            let resource = line.resource.as_ref().map(|r| r.id.clone());
            for (field, want, actual) in [
                ("project", &want_line.project, &line.project),
                ("subscription", &want_line.subscription, &line.subscription),
                ("resource", &want_line.resource, &resource),
            ] {
                if want.is_some() && want != actual {
                    mismatch(
                        out,
                        format!("{line_path}.{field}"),
                        want.as_deref().unwrap_or_default(),
                        actual.as_deref().unwrap_or("none"),
                    );
                }
            }
            if let Some(quantity) = want_line.quantity.filter(|q| !same(*q, line.quantity)) {
                mismatch(
                    out,
                    format!("{line_path}.quantity"),
                    quantity,
                    line.quantity,
                );
            }
            if let Some(amount) = want_line
                .amount
                .filter(|a| !same(*a, line.amount.to_decimal()))
            {
                mismatch(
                    out,
                    format!("{line_path}.amount ({})", line.description),
                    amount,
                    line.amount.to_decimal(),
                );
            }
        }
    }
    for want_usage in &want.credit_usage {
        let usage_path = format!("{path}.credit_usage.{}", want_usage.meter);
        let Some(report) = invoice
            .credit_usage
            .iter()
            .find(|r| r.meter == want_usage.meter)
        else {
            mismatch(out, usage_path, "a credit report", "none");
            continue;
        };
        let actual = serde_json::to_value(report).unwrap_or(Value::Null);
        for (name, value) in &want_usage.figures {
            let figure_path = format!("{usage_path}.{name}");
            match (actual.get(name), value) {
                (Some(Value::Bool(got)), Value::Bool(want)) if got != want => {
                    mismatch(out, figure_path, want, got)
                }
                (Some(Value::Bool(_)), _) => {}
                (Some(got), _) => match decimal_from_json(got) {
                    Some(got) => compare_value(out, figure_path, value, got),
                    None => mismatch(out, figure_path, value, got),
                },
                (None, _) => mismatch(out, figure_path, value, "no such figure"),
            }
        }
    }
}

fn compare_value(out: &mut Vec<Mismatch>, path: String, expected: &Value, actual: Decimal) {
    match decimal_from_json(expected) {
        Some(want) if same(want, actual) => {}
        Some(want) => mismatch(out, path, want, actual),
        None => mismatch(out, path, format!("{expected} (not a number)"), actual),
    }
}
