//! `pulse-ingest`: what arrives — the event model and its validation, tracking beacons, OTLP
//! metrics, and history imports. Pure: no AWS SDK, no Lambda runtime.

pub mod events;
pub mod imports;
pub mod otlp;
pub mod track;
