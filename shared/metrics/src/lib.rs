//! `pulse-metrics`: what Pulse computes — minute aggregation with sketches and HyperLogLogs,
//! sealing and rollups, the query model, metric definitions, sessions, funnels, and the live
//! subscription protocol. Pure: no AWS SDK, no Lambda runtime.

pub mod aggregate;
pub mod aggregation;
pub mod breakdown;
pub mod definitions;
pub mod funnels;
pub mod goals;
pub mod history;
pub mod insights;
pub mod live;
pub mod query;
pub mod rollup;
pub mod sessions;
