//! Commands other than the daemon itself. Each prints for a person (or, with
//! `--json`, for a program). Only `outbox retry` writes to the state
//! database; `send-test` and `replay` send alerts but queue nothing.

pub mod completions;
pub mod outbox;
pub mod replay;
pub mod send_test;
pub mod test;
