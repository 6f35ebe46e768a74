//! The embedded database (SQLite, one file in `state.dir`): which files and
//! articles were processed, which entities each `first_seen` rule has seen,
//! and the outbox of deliveries still to make.
//!
//! Recording an article and queueing its deliveries happen in ONE
//! transaction, so a crash leaves either nothing or the complete set of
//! pending deliveries. This module never talks to the network and never
//! decides anything about rules; it stores what it is given.

mod counts;
pub mod delivered;
mod outbox;
mod store;

pub use counts::OutboxCounts;
pub use outbox::{Delivery, DeliveryStatus};
pub use store::{FileKey, NewDelivery, ProcessedArticle, ReadSnapshot, Store, StoreError};
