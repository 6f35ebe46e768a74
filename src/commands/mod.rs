//! Commands other than the daemon itself. Each prints for a person (or, with
//! `--json`, for a program) and never touches the state database.

pub mod test;
