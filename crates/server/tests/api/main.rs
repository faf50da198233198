//! The one integration test binary: the router called without a socket, and the application
//! served on port 0, each on a fresh SQLite database.

mod events;
mod health;
mod helpers;
mod month;
mod problems;
mod serve;
