//! One module per resource; each exposes its handlers to [`crate::router`].

pub(crate) mod fallback;
pub(crate) mod health;
