//! The rule engine: normalisation, the match-expression language and the
//! compiled rule set.
//!
//! Everything in here is pure: no I/O, no async, no clock. Once a
//! [`RuleSet`] compiled, scanning an article cannot fail. State that spans
//! articles (`first_seen`) lives in the caller, not here.

mod explain;
pub mod expr;
mod fuzzy;
mod hits;
mod lists;
pub mod normalize;
mod regex_terms;
pub mod ruleset;
mod scan;
mod sentence;
mod translit;
pub mod words;

#[cfg(test)]
mod tests;

pub use ruleset::{CompileError, EntityDef, Origin, RuleDef, RuleMatch, RuleSet, RuleSetInput};
