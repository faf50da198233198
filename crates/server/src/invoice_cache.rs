//! Rendered bodies of finalized invoices, kept in memory for a short time.
//!
//! A finalized invoice is immutable but for its status (paid, void), and consoles read the same
//! invoices over and over: serving the rendered bytes from memory takes the database and the JSON
//! work out of `GET /api/v1/invoices/{id}` (BENCHMARKS.md). Every write through this process
//! (payment, void, credit note, finalize) removes the entry at once; a write through another node
//! is seen within [`InvoiceCache::TIME_TO_LIVE`]. Drafts are never cached. Entries carry the
//! invoice's customer so a customer token is checked against a cached invoice exactly as against a
//! stored one.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::body::Bytes;

/// A cached, rendered invoice.
#[derive(Clone, Debug)]
pub struct CachedInvoice {
    /// The customer it belongs to.
    pub customer_id: String,
    /// The JSON body of `GET /api/v1/invoices/{id}`.
    pub body: Bytes,
    stored_at: Instant,
}

/// Workspace id → invoice id → rendered body: nested so a lookup borrows the ids instead of
/// allocating a key on every request.
#[derive(Debug, Default)]
pub struct InvoiceCache {
    entries: Mutex<Entries>,
}

#[derive(Debug, Default)]
struct Entries {
    by_workspace: HashMap<String, HashMap<String, CachedInvoice>>,
    count: usize,
}

impl InvoiceCache {
    /// How long another node's write may go unseen.
    pub const TIME_TO_LIVE: Duration = Duration::from_secs(2);
    /// Most entries kept; the cache is emptied when it is full (simple, and bounded).
    pub const ENTRIES_MAX: usize = 10_000;

    /// The fresh entry for an invoice, if any.
    pub fn get(&self, workspace_id: &str, invoice_id: &str) -> Option<CachedInvoice> {
        let entries = self
            .entries
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        entries
            .by_workspace
            .get(workspace_id)?
            .get(invoice_id)
            .filter(|entry| entry.stored_at.elapsed() < Self::TIME_TO_LIVE)
            .cloned()
    }

    /// Keeps a rendered finalized invoice.
    pub fn put(&self, workspace_id: &str, invoice_id: &str, customer_id: &str, body: Bytes) {
        let mut entries = self
            .entries
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if entries.count >= Self::ENTRIES_MAX {
            *entries = Entries::default();
        }
        let entry = CachedInvoice {
            customer_id: customer_id.to_owned(),
            body,
            stored_at: Instant::now(),
        };
        let replaced = entries
            .by_workspace
            .entry(workspace_id.to_owned())
            .or_default()
            .insert(invoice_id.to_owned(), entry);
        if replaced.is_none() {
            entries.count += 1;
        }
    }

    /// Forgets an invoice after a write to it.
    pub fn remove(&self, workspace_id: &str, invoice_id: &str) {
        let mut entries = self
            .entries
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let removed = entries
            .by_workspace
            .get_mut(workspace_id)
            .and_then(|invoices| invoices.remove(invoice_id));
        if removed.is_some() {
            entries.count -= 1;
        }
    }
}

/// Removes an invoice's entry when dropped: hold it across a write so the entry goes after the
/// write, on every path out of the handler.
#[must_use = "the entry is removed when this guard is dropped"]
pub struct ForgetOnDrop<'a> {
    cache: &'a InvoiceCache,
    workspace_id: String,
    invoice_id: String,
}

impl InvoiceCache {
    /// A guard that forgets the invoice when the calling handler returns.
    pub fn forget_on_drop<'a>(&'a self, workspace_id: &str, invoice_id: &str) -> ForgetOnDrop<'a> {
        ForgetOnDrop {
            cache: self,
            workspace_id: workspace_id.to_owned(),
            invoice_id: invoice_id.to_owned(),
        }
    }
}

impl Drop for ForgetOnDrop<'_> {
    fn drop(&mut self) {
        self.cache.remove(&self.workspace_id, &self.invoice_id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_are_kept_per_workspace_and_removed_on_write() {
        let cache = InvoiceCache::default();
        cache.put("ws_a", "inv_1", "cus_1", Bytes::from_static(b"{}"));
        assert_eq!(cache.get("ws_a", "inv_1").unwrap().customer_id, "cus_1");
        assert!(cache.get("ws_b", "inv_1").is_none());
        cache.remove("ws_a", "inv_1");
        assert!(cache.get("ws_a", "inv_1").is_none());
    }
}
