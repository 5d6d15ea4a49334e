//! The CLI contract: `forecast`, `detect` and `backtest` read CSV `timestamp,value` and print
//! CSV on stdout. Bad input is one line on stderr naming the row, and exit code 2.

use crate::backtest::backtest;
use crate::forecast::neural::{self, Arch};
use crate::forecast::{ForecastError, forecast};
use crate::series::{self, InputError, Order, Regular, format_time, period_of};
use clap::{Parser, Subcommand};
use std::io::Write;
use std::path::PathBuf;

/// Pulse's forecasting and anomaly-detection models.
#[derive(Debug, Parser)]
#[command(name = "pulse-models", version)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Forecasts the periods after the last row, with 80 % and 95 % intervals.
    Forecast {
        #[arg(long)]
        input: PathBuf,
        #[arg(long, default_value_t = 7, value_parser = clap::value_parser!(u16).range(1..=30))]
        horizon: u16,
        #[command(flatten)]
        network: NetworkChoice,
    },
    /// Scores each row's anomaly in [0, 1], causally (a row's score uses only rows before it).
    Detect {
        #[arg(long)]
        input: PathBuf,
    },
    /// Rolling-origin accuracy: MASE (period 7), sMAPE, 1 − MAPE and interval coverage.
    Backtest {
        #[arg(long)]
        input: PathBuf,
        #[arg(long, default_value_t = 7, value_parser = clap::value_parser!(u16).range(1..=30))]
        horizon: u16,
        #[arg(long, default_value_t = 8)]
        cuts: usize,
    },
    /// Trains the forecaster's network on every CSV in a directory plus synthetic series, and
    /// writes its weights (safetensors). Offline: the weights are committed under models/weights.
    Train {
        #[arg(long)]
        data: PathBuf,
        #[arg(long)]
        out: PathBuf,
        #[arg(long, default_value_t = 17)]
        seed: u64,
        #[arg(long, default_value_t = 12)]
        epochs: usize,
        /// Synthetic series of three years added to the real ones.
        #[arg(long, default_value_t = 300)]
        synthetic: usize,
        /// The network's architecture (the forecaster ships the MLP).
        #[arg(long, value_enum, default_value_t = Arch::Mlp)]
        arch: Arch,
    },
}

/// Another network than the committed one, to measure it in the same pipeline.
#[derive(Debug, clap::Args)]
pub struct NetworkChoice {
    /// Weights (safetensors) of a network `train` wrote; the committed network by default.
    #[arg(long)]
    network: Option<PathBuf>,
    /// The architecture of `--network`.
    #[arg(long, value_enum, default_value_t = Arch::Mlp)]
    arch: Arch,
}

/// Why a command failed.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    #[error("{0}")]
    Input(#[from] InputError),
    #[error("{0}")]
    Forecast(#[from] ForecastError),
    #[error("cannot open {path}: {source}")]
    Open {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot write the output: {0}")]
    Output(#[source] std::io::Error),
    #[error("{path}: {source}")]
    TrainingData { path: PathBuf, source: InputError },
    #[error("training failed: {0}")]
    Training(#[from] candle_core::Error),
}

impl CliError {
    /// 2 for input the command cannot use, 1 for a failure to write.
    pub fn exit_code(&self) -> u8 {
        match self {
            CliError::Output(_) => 1,
            _ => 2,
        }
    }
}

/// Rows a day at the series' usual spacing (the median step of its first 100 rows; rows
/// taken as a sequence may repeat or step back), or 0 when the spacing is not a whole
/// fraction of a day's seconds.
fn rows_per_day(rows: &[series::Row]) -> usize {
    let mut steps: Vec<i64> = rows
        .windows(2)
        .take(100)
        .map(|w| w[1].at - w[0].at)
        .filter(|s| *s > 0)
        .collect();
    steps.sort_unstable();
    match steps.get(steps.len() / 2) {
        Some(step) if 86_400 % step == 0 => usize::try_from(86_400 / step).unwrap_or(0),
        _ => 0,
    }
}

/// Runs one command, writing its CSV to `out`.
pub fn run(command: &Command, out: &mut impl Write) -> Result<(), CliError> {
    match command {
        Command::Forecast {
            input,
            horizon,
            network,
        } => {
            if let Some(path) = &network.network {
                let weights = std::fs::read(path).map_err(|source| CliError::Open {
                    path: path.clone(),
                    source,
                })?;
                neural::use_network(neural::Net::load(weights, network.arch)?);
            }
            let rows = series::read(open(input)?, Order::Strict)?;
            let grid = Regular::of(&rows, period_of)?;
            let period = period_of(grid.step);
            let f = forecast(&grid.values, period, usize::from(*horizon))?;
            let mut w = String::from("timestamp,forecast,lo80,hi80,lo95,hi95,model\n");
            for k in 0..f.values.len() {
                w.push_str(&format!(
                    "{},{},{},{},{},{},{}\n",
                    format_time(grid.next(k)),
                    num(f.values[k]),
                    num(f.lo80[k]),
                    num(f.hi80[k]),
                    num(f.lo95[k]),
                    num(f.hi95[k]),
                    f.model
                ));
            }
            out.write_all(w.as_bytes()).map_err(CliError::Output)
        }
        Command::Detect { input } => {
            let rows = series::read(open(input)?, Order::Sequence)?;
            let mut detector = crate::detect::Detector::with_days(rows_per_day(&rows));
            let mut w = String::with_capacity(rows.len() * 40);
            w.push_str("timestamp,value,anomaly_score\n");
            for r in &rows {
                let s = detector.score(r.value);
                w.push_str(&format!("{},{},{}\n", r.timestamp, r.text, num(s.score)));
            }
            out.write_all(w.as_bytes()).map_err(CliError::Output)
        }
        Command::Backtest {
            input,
            horizon,
            cuts,
        } => {
            let rows = series::read(open(input)?, Order::Strict)?;
            let grid = Regular::of(&rows, period_of)?;
            let a = backtest(
                &grid.values,
                period_of(grid.step),
                usize::from(*horizon),
                (*cuts).max(1),
                7,
            )?;
            let w = format!(
                "metric,value\nmase,{}\nsmape,{}\naccuracy,{}\ncoverage80,{}\ncoverage95,{}\ncuts,{}\npoints,{}\nmodel,{}\n",
                num(a.mase),
                num(a.smape),
                num(a.accuracy),
                num(a.coverage80),
                num(a.coverage95),
                a.cuts,
                a.points,
                a.model
            );
            out.write_all(w.as_bytes()).map_err(CliError::Output)
        }
        Command::Train {
            data,
            out: path,
            seed,
            epochs,
            synthetic,
            arch,
        } => {
            let mut files: Vec<PathBuf> = std::fs::read_dir(data)
                .map_err(|source| CliError::Open {
                    path: data.clone(),
                    source,
                })?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|x| x == "csv"))
                .collect();
            files.sort();
            let mut series = Vec::with_capacity(files.len() + synthetic);
            for file in &files {
                let rows = series::read(open(file)?, Order::Strict).map_err(|source| {
                    CliError::TrainingData {
                        path: file.clone(),
                        source,
                    }
                })?;
                let grid =
                    Regular::of(&rows, period_of).map_err(|source| CliError::TrainingData {
                        path: file.clone(),
                        source,
                    })?;
                let log = grid.values.iter().all(|v| *v >= 0.0);
                series.push(
                    grid.values
                        .iter()
                        .map(|v| if log { v.ln_1p() } else { *v })
                        .collect(),
                );
            }
            let mut rng = fastrand::Rng::with_seed(*seed);
            for _ in 0..*synthetic {
                series.push(crate::forecast::neural::synthetic(&mut rng, 1_095));
            }
            let trained = neural::train(&series, *seed, *epochs, *arch)?;
            std::fs::write(path, &trained.weights).map_err(CliError::Output)?;
            let w = format!(
                "series,{}\nreal,{}\nsamples,{}\nbytes,{}\nloss_by_epoch,{}\n",
                series.len(),
                files.len(),
                trained.samples,
                trained.weights.len(),
                trained
                    .losses
                    .iter()
                    .map(|l| format!("{l:.4}"))
                    .collect::<Vec<_>>()
                    .join(" ")
            );
            out.write_all(w.as_bytes()).map_err(CliError::Output)
        }
    }
}

fn open(path: &PathBuf) -> Result<std::fs::File, CliError> {
    std::fs::File::open(path).map_err(|source| CliError::Open {
        path: path.clone(),
        source,
    })
}

/// Numbers to at most 6 decimals, without trailing zeros.
fn num(v: f64) -> String {
    if !v.is_finite() {
        return v.to_string();
    }
    let s = format!("{v:.6}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    if s == "-0" {
        "0".to_owned()
    } else {
        s.to_owned()
    }
}
