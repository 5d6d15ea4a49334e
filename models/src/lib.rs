//! Pulse's models: 7-day forecasts with calibrated intervals and streaming anomaly detection.
//! The library is what the functions that infer call; `pulse-models` (the binary) is the same
//! code behind the CLI contract that evaluations use.

pub mod backtest;
pub mod cli;
pub mod detect;
pub mod forecast;
pub mod series;
