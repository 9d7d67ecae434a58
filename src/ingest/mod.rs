//! The sources of appended rows, each a thin adapter over [`crate::datasets::Intake`]: it
//! decodes what arrives ([`decode`], shared by every source), hands the batch to the intake,
//! and acknowledges in its own protocol only once the intake answers that the rows are
//! durable. The HTTP and WebSocket doors are in [`crate::api`]; the broker subscribers are
//! here, each behind a cargo feature.

pub mod decode;

use crate::datasets::{Batch, KafkaPosition, Source};

/// The batch of `rows` from `source`, under an idempotency key if it has one.
pub fn batch(
    rows: decode::Rows,
    source: Source,
    key: Option<String>,
    position: Option<KafkaPosition>,
) -> Batch {
    Batch { columns: rows.columns, values: rows.values, source, key, position }
}
