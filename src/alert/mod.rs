//! Alerts: what a fired rule becomes ([`payload::Alert`]), and how each kind
//! of sink renders and delivers it.

pub mod build;
pub mod json;
pub mod payload;
pub mod send;
pub mod slack;
pub mod worker;
