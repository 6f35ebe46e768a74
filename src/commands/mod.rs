//! Commands other than the daemon itself. Each prints for a person (or, with
//! `--json`, for a program). Only `outbox retry` writes to the state database.

pub mod outbox;
pub mod test;
