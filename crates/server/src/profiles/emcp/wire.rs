//! EMCP's invoice shapes (seed 000; `docs/profiles/emcp.md`): a Stripe invoice as EMCP keeps it
//! in MongoDB, and the page envelope of the `mongoose-paginate-v2` library.

use billow_store::invoices::InvoiceRecord;
use billow_store::Customer;
use serde::Serialize;
use utoipa::ToSchema;

use crate::profiles::shared::javascript_iso as iso;

/// Invoices per history page: the library's default `limit`.
pub(crate) const PAGE_SIZE: u64 = 10;

/// `GET /api/teams/{id}/last-invoice`.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = EmcpInvoice)]
pub(crate) struct LastInvoice {
    /// billow's invoice id.
    #[serde(rename = "_id")]
    pub id: String,
    /// The payment provider's invoice id; billow's invoice number while there is none.
    #[serde(rename = "invoiceId")]
    pub invoice_id: String,
    /// The team's owner (the customer's `owner`).
    pub user: Option<String>,
    /// Stripe's invoice statuses are billow's (`draft` never shown; `uncollectible` arrives
    /// with payment collection).
    #[schema(value_type = String, example = "paid")]
    pub status: &'static str,
    /// The invoice's total in minor units (3300 = 33.00).
    pub amount: i64,
    /// Where billow serves the invoice's document; `null` until it is rendered.
    #[serde(rename = "invoicePdf")]
    pub invoice_pdf: Option<String>,
    #[serde(rename = "createdAt")]
    pub created_at: String,
    #[serde(rename = "updatedAt")]
    pub updated_at: String,
}

impl LastInvoice {
    pub(crate) fn new(customer: &Customer, invoice: &InvoiceRecord) -> Self {
        Self {
            id: invoice.id.to_string(),
            invoice_id: invoice
                .number
                .map_or_else(|| invoice.id.to_string(), |number| number.to_string()),
            user: customer.owner.clone(),
            status: invoice.status.as_str(),
            amount: invoice.total_minor,
            invoice_pdf: None,
            created_at: iso(invoice.created_at),
            updated_at: iso(invoice.updated_at),
        }
    }
}

/// One invoice of a history page.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = EmcpHistoryInvoice)]
pub(crate) struct HistoryInvoice {
    #[serde(rename = "_id")]
    pub id: String,
    #[schema(value_type = String, example = "paid")]
    pub status: &'static str,
    pub amount: i64,
    #[serde(rename = "invoicePdf")]
    pub invoice_pdf: Option<String>,
}

impl From<&InvoiceRecord> for HistoryInvoice {
    fn from(invoice: &InvoiceRecord) -> Self {
        Self {
            id: invoice.id.to_string(),
            status: invoice.status.as_str(),
            amount: invoice.total_minor,
            invoice_pdf: None,
        }
    }
}

/// `GET /api/teams/{id}/billing-history`: `mongoose-paginate-v2`'s result for `page`.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = EmcpHistoryPage)]
#[serde(rename_all = "camelCase")]
pub(crate) struct HistoryPage {
    pub docs: Vec<HistoryInvoice>,
    pub total_docs: u64,
    pub limit: u64,
    pub total_pages: u64,
    pub page: u64,
    pub paging_counter: u64,
    pub has_prev_page: bool,
    pub has_next_page: bool,
    pub prev_page: Option<u64>,
    pub next_page: Option<u64>,
}

impl HistoryPage {
    /// Page `page` (1 or more) of a history of `total_docs` invoices, holding `docs`. As the
    /// library computes it: `totalPages` is at least 1 (an empty history has one empty page), a
    /// page past the last is empty but keeps its number and a previous page.
    pub(crate) fn new(docs: Vec<HistoryInvoice>, total_docs: u64, page: u64) -> Self {
        let total_pages = total_docs.div_ceil(PAGE_SIZE).max(1);
        Self {
            docs,
            total_docs,
            limit: PAGE_SIZE,
            total_pages,
            page,
            paging_counter: page
                .saturating_sub(1)
                .saturating_mul(PAGE_SIZE)
                .saturating_add(1),
            has_prev_page: page > 1,
            has_next_page: page < total_pages,
            prev_page: (page > 1).then(|| page - 1),
            next_page: (page < total_pages).then(|| page + 1),
        }
    }

    /// How many invoices come before page `page`.
    pub(crate) fn offset(page: u64) -> u64 {
        page.saturating_sub(1).saturating_mul(PAGE_SIZE)
    }
}

/// The `page` query parameter as the library reads it: `parseInt(page, 10)`, then 1 for
/// anything below 1. `None` is what JavaScript calls NaN (no digits after optional whitespace
/// and sign), which the library passes on to MongoDB as the skip and MongoDB refuses; EMCP then
/// answers an error, and so does billow (400). Several `page` parameters are read as Express
/// reads them, an array whose text is the values joined by commas (so the first counts).
/// Numbers beyond 2^64 - 1 are read as that number (a page past any history).
pub(crate) fn page_number(values: &[String]) -> Option<u64> {
    if values.is_empty() {
        return Some(1);
    }
    let text = values.join(",");
    let text = text.trim_start_matches(is_javascript_whitespace);
    let (negative, digits) = match text.as_bytes().first() {
        Some(b'-') => (true, &text[1..]),
        Some(b'+') => (false, &text[1..]),
        _ => (false, text),
    };
    let digits: &str = &digits[..digits
        .find(|character: char| !character.is_ascii_digit())
        .unwrap_or(digits.len())];
    if digits.is_empty() {
        return None;
    }
    if negative {
        return Some(1);
    }
    let page = digits.bytes().fold(0_u64, |number, digit| {
        number
            .saturating_mul(10)
            .saturating_add(u64::from(digit - b'0'))
    });
    Some(page.max(1))
}

/// What `parseInt` skips before a number: JavaScript's WhiteSpace and LineTerminator.
fn is_javascript_whitespace(character: char) -> bool {
    character.is_whitespace() || character == '\u{feff}'
}

#[cfg(test)]
mod tests {
    use super::*;

    fn page(values: &[&str]) -> Option<u64> {
        page_number(
            &values
                .iter()
                .map(|value| (*value).to_owned())
                .collect::<Vec<_>>(),
        )
    }

    #[test]
    fn pages_are_read_as_parse_int_reads_them() {
        assert_eq!(page(&[]), Some(1));
        assert_eq!(page(&["2"]), Some(2));
        assert_eq!(page(&["0"]), Some(1));
        assert_eq!(page(&["-3"]), Some(1));
        assert_eq!(page(&["-0.5"]), Some(1));
        assert_eq!(page(&["2.9"]), Some(2));
        assert_eq!(page(&["  7 "]), Some(7));
        assert_eq!(page(&["+4"]), Some(4));
        assert_eq!(page(&["3abc"]), Some(3));
        assert_eq!(page(&["1e3"]), Some(1));
        assert_eq!(page(&["0x10"]), Some(1));
        assert_eq!(page(&["2", "5"]), Some(2));
        assert_eq!(page(&["99999999999999999999999"]), Some(u64::MAX));
        assert_eq!(page(&["abc"]), None);
        assert_eq!(page(&[""]), None);
        assert_eq!(page(&["-"]), None);
        assert_eq!(page(&[".5"]), None);
    }

    #[test]
    fn the_envelope_follows_the_library() {
        let empty = HistoryPage::new(Vec::new(), 0, 1);
        assert_eq!(
            (empty.total_pages, empty.page, empty.paging_counter),
            (1, 1, 1)
        );
        assert!(!empty.has_prev_page && !empty.has_next_page);
        let middle = HistoryPage::new(Vec::new(), 25, 2);
        assert_eq!((middle.total_pages, middle.paging_counter), (3, 11));
        assert_eq!((middle.prev_page, middle.next_page), (Some(1), Some(3)));
        let past = HistoryPage::new(Vec::new(), 25, 7);
        assert_eq!((past.prev_page, past.next_page), (Some(6), None));
        assert!(past.has_prev_page && !past.has_next_page);
        assert_eq!(past.paging_counter, 61);
        assert_eq!(HistoryPage::offset(3), 20);
    }
}
