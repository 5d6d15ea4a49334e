//! `pulse-core`: what every other crate of Pulse speaks — tenants and roles, the route table,
//! configuration, ingest limits, time resolutions and retention, stream watermarks, and the
//! error types with their problem+json form. No AWS SDK, no Lambda runtime.

pub mod apikeys;
pub mod config;
pub mod error;
pub mod identity;
pub mod limits;
pub mod problem;
pub mod role;
pub mod routes;
pub mod settings;
pub mod time;
pub mod watermark;

pub use config::Config;
pub use error::ApiError;
