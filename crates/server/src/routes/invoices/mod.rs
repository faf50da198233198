//! `/api/v1/invoices` and a customer's invoice views: list, get, finalize, void, credit notes,
//! payments (manual provider), upcoming, last invoice, billing history.
//!
//! A finalized invoice's content never changes: finalizing again is a 409, and corrections are
//! credit notes, which never credit more than the invoice's total.

mod wire;

use std::collections::HashMap;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use billow_core::credit_note::{
    AddCreditNoteLineError, AmountDue, CreditLineError, CreditNoteTotal, LineCredits,
};
use billow_core::{Currency, Money};
use billow_store::invoices::{
    CreditNoteRecord, InvoiceFilter, InvoiceRecord, InvoiceScope, InvoiceStatus,
};
use billow_store::CreditNoteId;
use jiff::Timestamp;
use serde::Deserialize;
use serde_json::Value;
use utoipa_axum::routes;

use crate::auth::{Principal, WorkspaceAuth};
use crate::error::{ApiError, Problem};
use crate::json::ApiJson;
use crate::openapi::ApiRouter;
use crate::query::ApiQuery;
use crate::routes::shared::{guard_customer, listed_customer, store_error};
use crate::state::AppState;
use crate::wire::invoice::{read_stored, stored_lines, ComputedInvoice, Period};
use crate::wire::{Instant, Page};
use wire::{
    parse_optional, starting_after, BillingHistoryEntry, CreateCreditNote, CreditNoteBody,
    CreditedLine, FinalizeInvoice, InvoiceBody, PaymentEntry, PaymentHistory, RecordPayment,
    StoredCreditedLine, UpcomingInvoices, VoidInvoice, CURSOR_DEPRECATED,
};

/// Page size when the client does not ask for one.
const PAGE_LIMIT_DEFAULT: i64 = 20;
/// Most lines one credit note may have.
const CREDIT_NOTE_LINES_MAX: usize = 100;

pub(crate) fn router() -> ApiRouter {
    ApiRouter::new()
        .routes(routes!(list_invoices))
        .routes(routes!(get_invoice))
        .routes(routes!(finalize_invoice))
        .routes(routes!(void_invoice))
        .routes(routes!(create_credit_note, list_credit_notes))
        .routes(routes!(record_payment, list_payments))
        .routes(routes!(upcoming_invoices))
        .routes(routes!(last_invoice))
        .routes(routes!(billing_history))
}

fn money(amount_minor: i64, currency: Currency) -> Money {
    Money::from_minor(amount_minor, currency)
}

/// Stripe's three amounts of an invoice: what the credit notes took off, what the customer owes
/// after them, and what is still to pay (core's [`AmountDue`]).
fn amount_due(invoice: &InvoiceRecord) -> AmountDue {
    AmountDue::new(
        invoice.total_minor,
        invoice.credited_minor,
        matches!(invoice.status, InvoiceStatus::Paid | InvoiceStatus::Void),
    )
}

/// A stored invoice as a response shows it.
pub(crate) fn invoice_body(
    state: &AppState,
    invoice: &InvoiceRecord,
) -> Result<InvoiceBody, ApiError> {
    let reference = invoice
        .number
        .map_or_else(|| invoice.id.to_string(), |number| format!("#{number}"));
    let currency = invoice.currency;
    let due = amount_due(invoice);
    // Only where money is owed: an open invoice with something still to pay (not a draft,
    // which may still change, nor one paid, void or credited in full). The instructions ask for
    // the amount due.
    let payment_instructions = (invoice.status == InvoiceStatus::Open && due.remaining_minor > 0)
        .then(|| {
            let amount = money(due.due_minor, currency).to_decimal();
            state
                .payments
                .instructions(&reference, &format!("{amount} {currency}"))
                .into()
        });
    Ok(InvoiceBody {
        id: invoice.id.to_string(),
        number: invoice.number,
        customer_id: invoice.customer_id.to_string(),
        scope: wire::scope(invoice.scope),
        subscription_id: (invoice.scope == InvoiceScope::Subscription)
            .then(|| invoice.invoice_key.clone()),
        subscriptions: invoice
            .subscriptions
            .iter()
            .map(ToString::to_string)
            .collect(),
        plan_version_id: (!invoice.plan_version_id.is_empty())
            .then(|| invoice.plan_version_id.to_string()),
        reason: invoice.reason,
        status: invoice.status.into(),
        issued_at: invoice.issued_at.into(),
        period: Period {
            start: invoice.period_start.into(),
            end: invoice.period_end.into(),
        },
        currency,
        rounding: invoice.rounding,
        total: money(invoice.total_minor, currency),
        credited: money(invoice.credited_minor, currency),
        amount_due: money(due.due_minor, currency),
        amount_remaining: money(due.remaining_minor, currency),
        lines: stored_lines(&invoice.lines).map_err(ApiError::internal)?,
        totals: read_stored("totals", &invoice.totals).map_err(ApiError::internal)?,
        credit_usage: read_stored("credit usage", &invoice.credit_usage)
            .map_err(ApiError::internal)?,
        created_at: invoice.created_at.into(),
        finalized_at: invoice.finalized_at.map(Instant::from),
        due_at: invoice.due_at.map(Instant::from),
        payment_instructions,
    })
}

#[derive(Debug, Deserialize)]
pub(crate) struct ListQuery {
    customer_id: Option<String>,
    subscription_id: Option<String>,
    /// Only invoices with a line of this project.
    project: Option<String>,
    status: Option<String>,
    /// Issued at or after.
    from: Option<String>,
    /// Issued before.
    to: Option<String>,
    /// The `next_cursor` of the previous page (Stripe's name, as on every native list).
    starting_after: Option<String>,
    /// The deprecated name of `starting_after`, accepted for one release.
    cursor: Option<String>,
    /// Kept as text so that a bad number is a 422 naming `limit`, not axum's plain-text 400.
    limit: Option<String>,
}

/// The `limit` parameter: 1 to 100, 20 when absent.
fn page_limit(text: Option<&str>) -> Result<i64, ApiError> {
    let Some(text) = text else {
        return Ok(PAGE_LIMIT_DEFAULT);
    };
    text.parse::<i64>()
        .ok()
        .filter(|limit| (1..=billow_store::invoices::INVOICE_PAGE_LIMIT_MAX).contains(limit))
        .ok_or_else(|| ApiError::invalid("limit", "must be a whole number between 1 and 100"))
}

fn parse_instant(field: &str, text: Option<&str>) -> Result<Option<Timestamp>, ApiError> {
    text.map(|text| {
        text.parse()
            .map_err(|_| ApiError::invalid(field, "must be an RFC 3339 instant"))
    })
    .transpose()
}

fn parse_status(text: Option<&str>) -> Result<Option<InvoiceStatus>, ApiError> {
    text.map(|text| {
        text.parse()
            .map_err(|_| ApiError::invalid("status", "must be one of draft, open, paid, void"))
    })
    .transpose()
}

/// Lists invoices newest first, 20 a page (at most 100): filters `customer_id`,
/// `subscription_id`, `project`, `status`, `from`/`to` (issued in `[from, to)`); `starting_after`
/// is the previous page's `next_cursor` (`cursor`, its former name, is still taken).
#[utoipa::path(get, path = "/api/v1/invoices", tag = "invoices",
    params(
        ("customer_id" = Option<String>, Query, description = "Only this customer's"),
        ("subscription_id" = Option<String>, Query, description = "Only this subscription's"),
        ("project" = Option<String>, Query, description = "Only invoices with a line of this project"),
        ("status" = Option<wire::InvoiceStatus>, Query, description = "Only invoices of this status"),
        ("from" = Option<String>, Query, format = DateTime, description = "Issued at or after (RFC 3339)"),
        ("to" = Option<String>, Query, format = DateTime, description = "Issued before (RFC 3339)"),
        ("starting_after" = Option<String>, Query, description = "`next_cursor` of the previous page"),
        ("cursor" = Option<String>, Query, deprecated, description = CURSOR_DEPRECATED),
        ("limit" = Option<i64>, Query, description = "1 to 100; 20 when absent", minimum = 1, maximum = 100),
    ),
    responses(
        (status = 200, description = "A page of invoices, newest first", body = Page<InvoiceBody>),
        (status = 404, description = "`customer_id` names another customer than a customer token's", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid parameter", body = Problem, content_type = "application/problem+json"),
    ))]
pub(crate) async fn list_invoices(
    State(state): State<AppState>,
    principal: Principal,
    ApiQuery(query): ApiQuery<ListQuery>,
) -> Result<ApiJson<Page<InvoiceBody>>, ApiError> {
    let limit = page_limit(query.limit.as_deref())?;
    let before_id = starting_after(query.starting_after, query.cursor)?;
    let customer_id = listed_customer(&principal, query.customer_id)?;
    let filter = InvoiceFilter {
        customer_id,
        subscription_id: query.subscription_id,
        project: query.project,
        status: parse_status(query.status.as_deref())?,
        issued_from: parse_instant("from", query.from.as_deref())?,
        issued_to: parse_instant("to", query.to.as_deref())?,
        before_id,
        // One past the page: whether another follows.
        limit: limit + 1,
    };
    let invoices = state
        .store
        .invoices(principal.workspace_id(), &filter)
        .await
        .map_err(ApiError::internal)?;
    let page = Page::from_one_past(invoices, page_size(limit), |invoice| invoice.id.to_string());
    Ok(ApiJson(
        page.try_map(|invoice| invoice_body(&state, &invoice))?,
    ))
}

/// A checked `limit` as a length.
fn page_size(limit: i64) -> usize {
    usize::try_from(limit).unwrap_or(usize::MAX)
}

async fn find_invoice(
    state: &AppState,
    principal: &Principal,
    id: &str,
) -> Result<InvoiceRecord, ApiError> {
    let not_found = || ApiError::NotFound {
        resource: "invoice",
        id: id.to_owned(),
    };
    let invoice = state
        .store
        .invoice(principal.workspace_id(), id)
        .await
        .map_err(ApiError::internal)?
        .ok_or_else(not_found)?;
    guard_customer(principal, &invoice.customer_id).map_err(|_| not_found())?;
    Ok(invoice)
}

fn workspace_principal(auth: &WorkspaceAuth) -> Principal {
    Principal::Workspace {
        workspace_id: auth.workspace_id.clone(),
    }
}

/// One invoice, with its lines and their calculation traces.
#[utoipa::path(get, path = "/api/v1/invoices/{id}", tag = "invoices",
    params(("id" = String, Path, description = "The invoice's id")),
    responses(
        (status = 200, description = "The invoice", body = InvoiceBody),
        (status = 404, description = "No such invoice (or another customer's, for a customer token)", body = Problem, content_type = "application/problem+json"),
    ))]
pub(crate) async fn get_invoice(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<String>,
) -> Result<axum::response::Response, ApiError> {
    use axum::response::IntoResponse;
    let json_header = [(axum::http::header::CONTENT_TYPE, "application/json")];
    let workspace_id = principal.workspace_id().as_str();
    if let Some(cached) = state.invoice_cache.get(workspace_id, &id) {
        guard_customer(&principal, &cached.customer_id).map_err(|_| ApiError::NotFound {
            resource: "invoice",
            id: id.clone(),
        })?;
        return Ok((json_header, cached.body).into_response());
    }
    let invoice = find_invoice(&state, &principal, &id).await?;
    let body = axum::body::Bytes::from(
        serde_json::to_vec(&invoice_body(&state, &invoice)?).map_err(ApiError::internal)?,
    );
    if invoice.status != InvoiceStatus::Draft {
        state
            .invoice_cache
            .put(workspace_id, &id, &invoice.customer_id, body.clone());
    }
    Ok((json_header, body).into_response())
}

/// Finalizes a draft now, before its grace period ends: it gets the next number and is open.
/// The body may be empty or `{}`.
#[utoipa::path(post, path = "/api/v1/invoices/{id}/finalize", request_body(content = Option<FinalizeInvoice>, content_type = "application/json", description = "Optional; no fields yet"),
    tag = "invoices",
    params(("id" = String, Path, description = "The invoice's id")),
    responses(
        (status = 200, description = "The finalized invoice", body = InvoiceBody),
        (status = 403, description = "A customer token", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such invoice", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Not a draft: already finalized", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "A field in the body", body = Problem, content_type = "application/problem+json"),
    ))]
pub(crate) async fn finalize_invoice(
    State(state): State<AppState>,
    auth: WorkspaceAuth,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<ApiJson<InvoiceBody>, ApiError> {
    let FinalizeInvoice {} = parse_optional(&body)?;
    let _forget = state
        .invoice_cache
        .forget_on_drop(auth.workspace_id.as_str(), &id);
    let invoice = find_invoice(&state, &workspace_principal(&auth), &id).await?;
    if invoice.status != InvoiceStatus::Draft {
        return Err(store_error("invoice", &id)(
            billow_store::BillingStoreError::Immutable,
        ));
    }
    if state
        .billing
        .finalize_draft(&auth.workspace_id, invoice)
        .await?
        .is_none()
    {
        // Another run or request finalized it first.
        return Err(store_error("invoice", &id)(
            billow_store::BillingStoreError::Immutable,
        ));
    }
    let invoice = find_invoice(&state, &workspace_principal(&auth), &id).await?;
    Ok(ApiJson(invoice_body(&state, &invoice)?))
}

/// Voids an open invoice. A paid or void invoice, or a draft, is a 409. The body may be empty
/// or `{}`.
#[utoipa::path(post, path = "/api/v1/invoices/{id}/void", request_body(content = Option<VoidInvoice>, content_type = "application/json", description = "Optional; no fields yet"),
    tag = "invoices",
    params(("id" = String, Path, description = "The invoice's id")),
    responses(
        (status = 200, description = "The void invoice", body = InvoiceBody),
        (status = 403, description = "A customer token", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such invoice", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Not open: a draft, paid or already void", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "A field in the body", body = Problem, content_type = "application/problem+json"),
    ))]
pub(crate) async fn void_invoice(
    State(state): State<AppState>,
    auth: WorkspaceAuth,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<ApiJson<InvoiceBody>, ApiError> {
    let VoidInvoice {} = parse_optional(&body)?;
    let _forget = state
        .invoice_cache
        .forget_on_drop(auth.workspace_id.as_str(), &id);
    find_invoice(&state, &workspace_principal(&auth), &id).await?;
    let invoice = state
        .store
        .set_invoice_status(
            &auth.workspace_id,
            &id,
            &[InvoiceStatus::Open],
            InvoiceStatus::Void,
            state.clock.now(),
        )
        .await
        .map_err(store_error("invoice", &id))?;
    Ok(ApiJson(invoice_body(&state, &invoice)?))
}

/// Credits part of a finalized invoice: `lines` of `{description, amount, line?}` (amounts in
/// major units, positive); the invoice's credit notes never credit more than its total.
#[utoipa::path(post, path = "/api/v1/invoices/{id}/credit-notes", request_body(content = CreateCreditNote, content_type = "application/json", description = "The credit note's lines"),
    tag = "invoices",
    params(("id" = String, Path, description = "The invoice's id")),
    responses(
        (status = 201, description = "The credit note", body = CreditNoteBody),
        (status = 403, description = "A customer token", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such invoice", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Not finalized (a draft) or void", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid field, or more than is left to credit on the invoice or a line", body = Problem, content_type = "application/problem+json"),
    ))]
pub(crate) async fn create_credit_note(
    State(state): State<AppState>,
    auth: WorkspaceAuth,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<CreateCreditNote>,
) -> Result<(StatusCode, ApiJson<CreditNoteBody>), ApiError> {
    let _forget = state
        .invoice_cache
        .forget_on_drop(auth.workspace_id.as_str(), &id);
    let invoice = find_invoice(&state, &workspace_principal(&auth), &id).await?;
    let currency = invoice.currency;
    if body.lines.is_empty() || body.lines.len() > CREDIT_NOTE_LINES_MAX {
        return Err(ApiError::invalid("lines", "must have 1 to 100 lines"));
    }
    let mut lines = Vec::with_capacity(body.lines.len());
    // Core sums the lines: the handler only names the line a refusal comes from.
    let mut total = CreditNoteTotal::new(currency);
    // What is left to credit on each invoice line a line names: its amount less what earlier
    // credit notes (and earlier lines of this one) took off it.
    let mut line_credits = if body.lines.iter().any(|line| line.line.is_some()) {
        let earlier = state
            .store
            .credit_notes(&auth.workspace_id, &id)
            .await
            .map_err(ApiError::internal)?;
        credited_lines(&invoice.lines, &earlier, currency)
    } else {
        HashMap::new()
    };
    for (index, line) in body.lines.iter().enumerate() {
        let field = |name: &str| format!("lines[{index}].{name}");
        if line.description.trim().is_empty() {
            return Err(ApiError::invalid(field("description"), "must not be empty"));
        }
        let money = Money::from_exact_decimal(line.amount, currency).map_err(|_| {
            ApiError::invalid(
                field("amount"),
                "must be whole minor units of the invoice currency",
            )
        })?;
        total.add_line(money).map_err(|error| match error {
            AddCreditNoteLineError::NotPositive { .. } => {
                ApiError::invalid(field("amount"), "must be positive")
            }
            AddCreditNoteLineError::Overflow { .. } => {
                ApiError::invalid(field("amount"), "is too large")
            }
            // The amount was read in the invoice's currency just above.
            AddCreditNoteLineError::CurrencyMismatch { .. } => ApiError::internal(error),
        })?;
        if let Some(number) = line.line {
            let Some(credits) = line_credits.get_mut(&number) else {
                return Err(ApiError::invalid(
                    field("line"),
                    format!("the invoice has no line {number}"),
                ));
            };
            credits.credit(money).map_err(|error| match error {
                CreditLineError::AboveLine { left, line, .. } => ApiError::invalid(
                    field("amount"),
                    format!(
                        "is more than the {} left to credit on invoice line {number} (of {})",
                        left.to_decimal(),
                        line.to_decimal()
                    ),
                ),
                CreditLineError::Money(error) => ApiError::internal(error),
            })?;
        }
        lines.push(StoredCreditedLine {
            kind: None,
            description: line.description.clone(),
            amount: money,
            line: line.line,
            period: None,
            adjustment: None,
        });
    }
    let note = CreditNoteRecord {
        id: CreditNoteId::new(),
        invoice_id: id.clone().into(),
        total_minor: total.total().amount_minor(),
        lines: serde_json::to_value(&lines).map_err(ApiError::internal)?,
        reason: body.reason,
        created_at: state.clock.now(),
    };
    state
        .store
        .insert_credit_note(&auth.workspace_id, &note)
        .await
        .map_err(store_error("invoice", &id))?;
    Ok((
        StatusCode::CREATED,
        ApiJson(credit_note_body(&note, invoice.currency)?),
    ))
}

/// What is left to credit on each line of an invoice (by number), given its `lines` as stored
/// and its credit notes so far: each line's amount, less what the notes' lines that name it took
/// off.
fn credited_lines(
    lines: &Value,
    notes: &[CreditNoteRecord],
    currency: Currency,
) -> HashMap<u32, LineCredits> {
    let minor = |value: &Value| value["amount"]["amount_minor"].as_i64();
    let mut credits: HashMap<u32, LineCredits> = lines
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|line| {
            let number = u32::try_from(line["number"].as_u64()?).ok()?;
            Some((
                number,
                LineCredits::new(Money::from_minor(minor(line)?, currency)),
            ))
        })
        .collect();
    for line in notes
        .iter()
        .filter_map(|note| note.lines.as_array())
        .flatten()
    {
        let number = line["line"].as_u64().and_then(|n| u32::try_from(n).ok());
        if let (Some(credit), Some(amount)) =
            (number.and_then(|n| credits.get_mut(&n)), minor(line))
        {
            // Stored notes were checked when written; a line credited past its amount (before
            // this check existed) just has nothing left.
            if credit.credit(Money::from_minor(amount, currency)).is_err() {
                *credit = LineCredits::new(Money::zero(currency));
            }
        }
    }
    credits
}

fn credit_note_body(
    note: &CreditNoteRecord,
    currency: Currency,
) -> Result<CreditNoteBody, ApiError> {
    Ok(CreditNoteBody {
        id: note.id.to_string(),
        invoice_id: note.invoice_id.to_string(),
        total: money(note.total_minor, currency),
        lines: read_stored::<Vec<StoredCreditedLine>>("credit note lines", &note.lines)
            .map_err(ApiError::internal)?
            .into_iter()
            .map(CreditedLine::from)
            .collect(),
        reason: note.reason.clone(),
        created_at: note.created_at.into(),
    })
}

/// The credit notes of an invoice, oldest first, all on one page.
#[utoipa::path(get, path = "/api/v1/invoices/{id}/credit-notes", tag = "invoices",
    params(("id" = String, Path, description = "The invoice's id")),
    responses(
        (status = 200, description = "The credit notes, never cut into pages", body = Page<CreditNoteBody>),
        (status = 404, description = "No such invoice (or another customer's, for a customer token)", body = Problem, content_type = "application/problem+json"),
    ))]
pub(crate) async fn list_credit_notes(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<String>,
) -> Result<ApiJson<Page<CreditNoteBody>>, ApiError> {
    let invoice = find_invoice(&state, &principal, &id).await?;
    let notes = state
        .store
        .credit_notes(principal.workspace_id(), &id)
        .await
        .map_err(ApiError::internal)?;
    let data = notes
        .iter()
        .map(|note| credit_note_body(note, invoice.currency))
        .collect::<Result<_, _>>()?;
    Ok(ApiJson(Page::whole(data)))
}

/// Records a payment state of an invoice (manual provider): `state` is `PaymentInProgress`,
/// `Paid` or `PaymentFailed`; `Paid` marks the invoice paid.
#[utoipa::path(post, path = "/api/v1/invoices/{id}/payments", request_body(content = RecordPayment, content_type = "application/json", description = "The payment state to record"),
    tag = "invoices",
    params(("id" = String, Path, description = "The invoice's id")),
    responses(
        (status = 201, description = "The payment history", body = PaymentHistory),
        (status = 403, description = "A customer token", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such invoice", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "A draft or void invoice, or a state its payment cannot take", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid field", body = Problem, content_type = "application/problem+json"),
    ))]
pub(crate) async fn record_payment(
    State(state): State<AppState>,
    auth: WorkspaceAuth,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<RecordPayment>,
) -> Result<(StatusCode, ApiJson<PaymentHistory>), ApiError> {
    let _forget = state
        .invoice_cache
        .forget_on_drop(auth.workspace_id.as_str(), &id);
    find_invoice(&state, &workspace_principal(&auth), &id).await?;
    state
        .store
        .add_payment_state(
            &auth.workspace_id,
            &id,
            body.state.as_str(),
            body.message.as_deref(),
            state.clock.now(),
        )
        .await
        .map_err(store_error("invoice", &id))?;
    let history = payment_history(&state, &workspace_principal(&auth), &id).await?;
    Ok((StatusCode::CREATED, ApiJson(history)))
}

async fn payment_history(
    state: &AppState,
    principal: &Principal,
    id: &str,
) -> Result<PaymentHistory, ApiError> {
    let invoice = find_invoice(state, principal, id).await?;
    let history = state
        .store
        .payment_states(principal.workspace_id(), id)
        .await
        .map_err(ApiError::internal)?;
    let data = history
        .into_iter()
        .map(|entry| PaymentEntry {
            state: entry.state,
            message: entry.message,
            at: entry.at.into(),
        })
        .collect();
    Ok(PaymentHistory {
        invoice_id: id.to_owned(),
        status: invoice.status.into(),
        page: Page::whole(data),
    })
}

/// The payment-state history of an invoice, oldest first, all on one page.
#[utoipa::path(get, path = "/api/v1/invoices/{id}/payments", tag = "invoices",
    params(("id" = String, Path, description = "The invoice's id")),
    responses(
        (status = 200, description = "The payment history, never cut into pages", body = PaymentHistory),
        (status = 404, description = "No such invoice (or another customer's, for a customer token)", body = Problem, content_type = "application/problem+json"),
    ))]
pub(crate) async fn list_payments(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<String>,
) -> Result<ApiJson<PaymentHistory>, ApiError> {
    Ok(ApiJson(payment_history(&state, &principal, &id).await?))
}

/// What would be billed if the customer's open periods closed now (the engine's `upcoming`),
/// with the pending late-usage adjustments the next run would bill on it (and their tax).
#[utoipa::path(get, path = "/api/v1/customers/{id}/invoices/upcoming", tag = "invoices",
    params(("id" = String, Path, description = "The customer's id")),
    responses(
        (status = 200, description = "The upcoming invoices, never cut into pages", body = UpcomingInvoices),
        (status = 404, description = "No such customer (or another one than a customer token's)", body = Problem, content_type = "application/problem+json"),
    ))]
pub(crate) async fn upcoming_invoices(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<String>,
) -> Result<ApiJson<UpcomingInvoices>, ApiError> {
    guard_customer(&principal, &id)?;
    let preview = state
        .billing
        .upcoming_invoices(principal.workspace_id(), &id)
        .await?
        .ok_or_else(|| ApiError::NotFound {
            resource: "customer",
            id: id.clone(),
        })?;
    Ok(ApiJson(UpcomingInvoices {
        now: preview.now.into(),
        page: Page::whole(
            preview
                .upcoming
                .into_iter()
                .map(ComputedInvoice::from)
                .collect(),
        ),
    }))
}

/// The customer's finalized invoices, newest first (drafts excluded).
async fn finalized_invoices(
    state: &AppState,
    principal: &Principal,
    customer_id: &str,
    before_id: Option<String>,
    limit: i64,
) -> Result<Vec<InvoiceRecord>, ApiError> {
    guard_customer(principal, customer_id)?;
    let mut found = Vec::new();
    let mut filter = InvoiceFilter {
        customer_id: Some(customer_id.to_owned()),
        before_id,
        limit: billow_store::invoices::INVOICE_PAGE_LIMIT_MAX,
        ..InvoiceFilter::default()
    };
    loop {
        let page = state
            .store
            .invoices(principal.workspace_id(), &filter)
            .await
            .map_err(ApiError::internal)?;
        let Some(last) = page.last() else { break };
        filter.before_id = Some(last.id.clone().into());
        found.extend(
            page.into_iter()
                .filter(|i| i.status != InvoiceStatus::Draft),
        );
        if found.len() >= usize::try_from(limit).unwrap_or(usize::MAX) {
            break;
        }
    }
    found.truncate(usize::try_from(limit).unwrap_or(usize::MAX));
    Ok(found)
}

/// The customer's latest finalized invoice (EMCP's `last-invoice`).
#[utoipa::path(get, path = "/api/v1/customers/{id}/last-invoice", tag = "invoices",
    params(("id" = String, Path, description = "The customer's id")),
    responses(
        (status = 200, description = "The last invoice", body = InvoiceBody),
        (status = 404, description = "No finalized invoice yet, or another customer than a customer token's", body = Problem, content_type = "application/problem+json"),
    ))]
pub(crate) async fn last_invoice(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<String>,
) -> Result<ApiJson<InvoiceBody>, ApiError> {
    let invoices = finalized_invoices(&state, &principal, &id, None, 1).await?;
    let invoice = invoices.first().ok_or_else(|| ApiError::NotFound {
        resource: "invoice of customer",
        id: id.clone(),
    })?;
    Ok(ApiJson(invoice_body(&state, invoice)?))
}

#[derive(Debug, Deserialize)]
pub(crate) struct HistoryQuery {
    /// The `next_cursor` of the previous page.
    starting_after: Option<String>,
    /// The deprecated name of `starting_after`, accepted for one release.
    cursor: Option<String>,
    /// Kept as text so that a bad number is a 422 naming `limit`, not axum's plain-text 400.
    limit: Option<String>,
}

/// The customer's finalized invoices, newest first, with their statuses (billing history).
#[utoipa::path(get, path = "/api/v1/customers/{id}/billing-history", tag = "invoices",
    params(
        ("id" = String, Path, description = "The customer's id"),
        ("starting_after" = Option<String>, Query, description = "`next_cursor` of the previous page"),
        ("cursor" = Option<String>, Query, deprecated, description = CURSOR_DEPRECATED),
        ("limit" = Option<i64>, Query, description = "1 to 100; 20 when absent", minimum = 1, maximum = 100),
    ),
    responses(
        (status = 200, description = "A page of the billing history, newest first", body = Page<BillingHistoryEntry>),
        (status = 404, description = "Another customer than a customer token's", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid parameter", body = Problem, content_type = "application/problem+json"),
    ))]
pub(crate) async fn billing_history(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<String>,
    ApiQuery(query): ApiQuery<HistoryQuery>,
) -> Result<ApiJson<Page<BillingHistoryEntry>>, ApiError> {
    let limit = page_limit(query.limit.as_deref())?;
    let before_id = starting_after(query.starting_after, query.cursor)?;
    // One past the page: whether another follows.
    let invoices = finalized_invoices(&state, &principal, &id, before_id, limit + 1).await?;
    let page = Page::from_one_past(invoices, page_size(limit), |invoice| invoice.id.to_string());
    Ok(ApiJson(page.map(|invoice| {
        // What is owed, as on the invoice itself (core's amounts).
        let due = amount_due(&invoice);
        let currency = invoice.currency;
        BillingHistoryEntry {
            id: invoice.id.to_string(),
            number: invoice.number,
            status: invoice.status.into(),
            issued_at: invoice.issued_at.into(),
            due_at: invoice.due_at.map(Instant::from),
            period: Period {
                start: invoice.period_start.into(),
                end: invoice.period_end.into(),
            },
            total: money(invoice.total_minor, currency),
            credited: money(invoice.credited_minor, currency),
            amount_due: money(due.due_minor, currency),
            amount_remaining: money(due.remaining_minor, currency),
        }
    })))
}
