//! Pulse's shared library: the domain model and the AWS adapters every function uses.
//!
//! Handlers in `functions/` parse requests into the types here, call domain code here, and map
//! the outcome to a response through [`http::serve`]. AWS clients sit behind the narrow traits
//! of [`store`], so handlers never touch an SDK type.

pub mod aggregate;
pub mod apikeys;
pub mod aws;
pub mod config;
pub mod definitions;
pub mod error;
pub mod events;
pub mod funnels;
pub mod http;
pub mod identity;
pub mod imports;
pub mod live;
pub mod otlp;
pub mod problem;
pub mod query;
pub mod read;
pub mod rollup;
pub mod routes;
pub mod selfmon;
pub mod sessions;
pub mod store;
pub mod telemetry;
pub mod track;
pub mod watermark;

pub use config::Config;
pub use error::ApiError;
