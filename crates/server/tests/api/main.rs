//! The one integration test binary: the router called without a socket, and the application
//! served on port 0, each on a fresh SQLite database.

mod auth;
mod billing;
mod connections;
mod consolidated;
mod coupons;
mod currencies;
mod customers;
mod events;
mod health;
mod helpers;
mod idempotency;
mod incremental;
mod invoice_pages;
mod invoices;
mod late_credit;
mod month;
mod nul;
mod openapi;
mod problems;
mod profile_akkeris;
mod profile_emcp;
mod profile_openmeter;
mod queries;
mod resources;
mod runs;
mod serve;
mod storage_full;
mod upcoming;
