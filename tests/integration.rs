//! Every integration test of Pulse against the local cloud, in one binary (one link of the
//! local cloud and the functions). Tests that share `pulse_tests::cloud()` share one local
//! cloud and use tenants of their own; tests that need other parameters start their own.

mod adapters;
mod api_keys;
mod definitions;
mod exactly_once;
mod health;
mod hostile;
mod http_auth;
mod ingest;
mod insights;
mod invariants;
mod live;
mod local_cloud;
mod openapi;
mod otlp;
mod query;
mod rollup;
mod track;
mod triggers;
mod views;
