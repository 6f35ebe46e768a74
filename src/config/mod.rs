//! config.toml: parse (serde, unknown keys rejected), validate (names
//! resolved, paths made absolute, secrets read from the environment or from
//! files) and compile (the [`crate::rules::RuleSet`]).
//!
//! Loading needs no network, so `newswatch check` runs anywhere. Every error
//! is a [`Diagnostic`] that names the file, line and column. This module
//! never logs a secret and never puts one in an error message: URLs and
//! signing keys are held in [`Secret`], whose `Debug` and `Display` hide them.

mod diagnostic;
mod load;
mod raw;
mod secret;

pub use diagnostic::Diagnostic;
pub use load::{
    load, load_str, Config, Discovery, DiscoveryPattern, Leftovers, OnDuplicate, RateLimit,
    RetryPolicy, Rule, RuleTest, ServerConfig, SinkConfig, SinkKind, TestArticle, Threshold,
    Throttle, WatchConfig, DEFAULT_LISTEN,
};
pub use secret::Secret;
