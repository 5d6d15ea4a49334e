//! The neural member: one small network trained across many series (N-BEATS' lesson: a global
//! model learns shapes no single series shows often enough). It reads the last eight weeks of
//! a daily series, normalised (minus the last week's mean, over the mean distance from it), and
//! predicts the next week as a correction to the seasonal naive. Longer horizons feed its own
//! forecast back. Weights are trained offline by `pulse-models train` (fixed seed) and compiled
//! into the binary; they are loaded once, on first use.

use candle_core::{D, DType, Device, Tensor};
use candle_nn::rnn::{LSTM, LSTMConfig, RNN};
use candle_nn::{Linear, Module, Optimizer, VarBuilder, VarMap, linear};
use std::sync::OnceLock;

/// Days of history the network reads.
pub const INPUT: usize = 56;
/// Days it predicts at once.
pub const OUTPUT: usize = 7;
const HIDDEN: usize = 128;
/// The LSTM's hidden units (it reads the input as 8 weeks of 7 values).
const LSTM_HIDDEN: usize = 64;
/// Normalised values are clipped to this, so one wild day cannot dominate the input.
const CLIP: f32 = 8.0;

/// The committed weights (safetensors).
static WEIGHTS: &[u8] = include_bytes!("../../weights/forecast-mlp.safetensors");

/// The forecaster's network: the MLP it ships, or the LSTM the issue suggested, kept to measure
/// one against the other (`pulse-models train --arch lstm`; docs/BENCHMARKS.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Arch {
    Mlp,
    Lstm,
}

/// A network of either architecture.
#[derive(Debug)]
pub enum Net {
    Mlp(Mlp),
    Lstm(Lstm),
}

impl Net {
    fn new(arch: Arch, vb: &VarBuilder) -> candle_core::Result<Self> {
        Ok(match arch {
            Arch::Mlp => Net::Mlp(Mlp::new(vb)?),
            Arch::Lstm => Net::Lstm(Lstm::new(vb)?),
        })
    }

    /// A network of `arch` from safetensors bytes.
    pub fn load(weights: Vec<u8>, arch: Arch) -> candle_core::Result<Self> {
        let vb = VarBuilder::from_buffered_safetensors(weights, DType::F32, &Device::Cpu)?;
        Net::new(arch, &vb)
    }

    /// Normalised windows `[batch, INPUT]` → normalised next weeks `[batch, OUTPUT]`.
    fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        match self {
            Net::Mlp(m) => m.forward(x),
            Net::Lstm(l) => l.forward(x),
        }
    }
}

/// The LSTM: the window as 8 steps of a week each, the last hidden state through a linear
/// head, as a correction to the seasonal naive (as the MLP's).
#[derive(Debug)]
pub struct Lstm {
    rnn: LSTM,
    out: Linear,
}

impl Lstm {
    fn new(vb: &VarBuilder) -> candle_core::Result<Self> {
        Ok(Self {
            rnn: candle_nn::rnn::lstm(OUTPUT, LSTM_HIDDEN, LSTMConfig::default(), vb.pp("lstm"))?,
            out: linear(LSTM_HIDDEN, OUTPUT, vb.pp("out"))?,
        })
    }

    fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        let batch = x.dim(0)?;
        let weeks = x.reshape((batch, INPUT / OUTPUT, OUTPUT))?;
        let states = self.rnn.seq(&weeks)?;
        let last = states
            .last()
            .ok_or_else(|| candle_core::Error::Msg("an empty sequence".into()))?;
        let naive = x.narrow(D::Minus1, INPUT - OUTPUT, OUTPUT)?;
        naive + self.out.forward(last.h())?
    }
}

/// The network: two hidden layers and a linear head.
#[derive(Debug)]
pub struct Mlp {
    l1: Linear,
    l2: Linear,
    out: Linear,
}

impl Mlp {
    fn new(vb: &VarBuilder) -> candle_core::Result<Self> {
        Ok(Self {
            l1: linear(INPUT, HIDDEN, vb.pp("l1"))?,
            l2: linear(HIDDEN, HIDDEN, vb.pp("l2"))?,
            out: linear(HIDDEN, OUTPUT, vb.pp("out"))?,
        })
    }

    /// Normalised windows `[batch, INPUT]` → normalised next weeks `[batch, OUTPUT]`.
    fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        let h = self.l1.forward(x)?.relu()?;
        let h = self.l2.forward(&h)?.relu()?;
        let naive = x.narrow(D::Minus1, INPUT - OUTPUT, OUTPUT)?;
        naive + self.out.forward(&h)?
    }
}

/// A network used instead of the committed one ([`use_network`]).
static OTHER: OnceLock<Net> = OnceLock::new();

/// The committed network (or the one [`use_network`] chose), or `None` if its weights cannot
/// be read (the ensemble then goes on without it).
pub fn model() -> Option<&'static Net> {
    static MODEL: OnceLock<Option<Net>> = OnceLock::new();
    if let Some(other) = OTHER.get() {
        return Some(other);
    }
    MODEL
        .get_or_init(|| Net::load(WEIGHTS.to_vec(), Arch::Mlp).ok())
        .as_ref()
}

/// Makes `net` the forecaster's network for the rest of the process instead of the committed
/// one (the CLI's `--network`, to measure another network in the same pipeline); `false` if
/// one was chosen before.
pub fn use_network(net: Net) -> bool {
    OTHER.set(net).is_ok()
}

/// A window's normalisation: the last week's mean, and the mean absolute distance from it (a
/// perfectly weekly series keeps its shape, a noisy one is not amplified).
fn normalise(window: &[f64]) -> (f64, f64) {
    let level = window[window.len() - OUTPUT..].iter().sum::<f64>() / OUTPUT as f64;
    let spread = window.iter().map(|v| (v - level).abs()).sum::<f64>() / window.len() as f64;
    (level, spread.max(1e-3 * (1.0 + level.abs())))
}

fn input(window: &[f64], level: f64, scale: f64) -> Vec<f32> {
    window
        .iter()
        .map(|v| (((v - level) / scale) as f32).clamp(-CLIP, CLIP))
        .collect()
}

/// Forecasts `horizon` steps after `z` (transformed scale), or `None` when the history is
/// shorter than the network's input or the weights are unavailable.
pub fn predict(z: &[f64], horizon: usize) -> Option<Vec<f64>> {
    predict_many(&[z], horizon)?.pop()
}

/// Forecasts `horizon` steps after each history in `histories` in one batch (a forward pass
/// per [`OUTPUT`] steps for all of them: the forecaster's calibration asks for a forecast at
/// each of up to 365 origins, and a pass costs about the same for one row as for hundreds).
/// `None` when any history is shorter than the network's input or the weights are
/// unavailable.
pub fn predict_many(histories: &[&[f64]], horizon: usize) -> Option<Vec<Vec<f64>>> {
    predict_with(model()?, histories, horizon)
}

/// [`predict_many`] by `net`.
pub fn predict_with(net: &Net, histories: &[&[f64]], horizon: usize) -> Option<Vec<Vec<f64>>> {
    if histories.iter().any(|z| z.len() < INPUT) {
        return None;
    }
    let mut windows: Vec<Vec<f64>> = histories
        .iter()
        .map(|z| z[z.len() - INPUT..].to_vec())
        .collect();
    let mut out: Vec<Vec<f64>> = vec![Vec::with_capacity(horizon + OUTPUT); histories.len()];
    let mut made = 0;
    while made < horizon && !windows.is_empty() {
        let norms: Vec<(f64, f64)> = windows.iter().map(|w| normalise(w)).collect();
        let x: Vec<f32> = windows
            .iter()
            .zip(&norms)
            .flat_map(|(w, (level, scale))| input(w, *level, *scale))
            .collect();
        let x = Tensor::from_vec(x, (windows.len(), INPUT), &Device::Cpu).ok()?;
        let y: Vec<f32> = net.forward(&x).ok()?.flatten_all().ok()?.to_vec1().ok()?;
        for ((row, (level, scale)), (window, forecast)) in y
            .chunks(OUTPUT)
            .zip(&norms)
            .zip(windows.iter_mut().zip(out.iter_mut()))
        {
            for v in row {
                let value = level + f64::from(*v) * scale;
                forecast.push(value);
                window.remove(0);
                window.push(value);
            }
        }
        made += OUTPUT;
    }
    for forecast in &mut out {
        forecast.truncate(horizon);
    }
    Some(out)
}

/// How a training run went.
#[derive(Debug, Clone, PartialEq)]
pub struct Trained {
    /// The weights, as safetensors bytes.
    pub weights: Vec<u8>,
    pub samples: usize,
    /// Mean absolute error (normalised) of each epoch.
    pub losses: Vec<f32>,
}

/// Trains the network on every window of `series` (each on the transformed scale), with a
/// fixed seed for the initial weights and the sample order.
pub fn train(
    series: &[Vec<f64>],
    seed: u64,
    epochs: usize,
    arch: Arch,
) -> candle_core::Result<Trained> {
    let device = Device::Cpu;
    let mut xs: Vec<f32> = Vec::new();
    let mut ys: Vec<f32> = Vec::new();
    for z in series {
        for o in INPUT..=z.len().saturating_sub(OUTPUT) {
            let window = &z[o - INPUT..o];
            let (level, scale) = normalise(window);
            xs.extend(input(window, level, scale));
            ys.extend(
                z[o..o + OUTPUT]
                    .iter()
                    .map(|v| (((v - level) / scale) as f32).clamp(-CLIP, CLIP)),
            );
        }
    }
    let samples = xs.len() / INPUT;
    let varmap = VarMap::new();
    let vb = VarBuilder::from_varmap(&varmap, DType::F32, &device);
    let net = Net::new(arch, &vb)?;
    let hidden = match arch {
        Arch::Mlp => HIDDEN,
        Arch::Lstm => LSTM_HIDDEN,
    };
    // Seeded initial weights (the CPU device's own generator cannot be seeded): uniform in
    // ±1/√fan_in, as a linear layer's default, in the order of the variables' names.
    let mut rng = fastrand::Rng::with_seed(seed);
    {
        let data = varmap
            .data()
            .lock()
            .map_err(|_| candle_core::Error::Msg("weights lock".into()))?;
        let mut names: Vec<&String> = data.keys().collect();
        names.sort();
        for name in names {
            let var = &data[name];
            let dims = var.dims().to_vec();
            let fan_in = if dims.len() == 2 { dims[1] } else { hidden };
            let bound = 1.0 / (fan_in as f32).sqrt();
            let n: usize = dims.iter().product();
            let values: Vec<f32> = (0..n).map(|_| (rng.f32() * 2.0 - 1.0) * bound).collect();
            var.set(&Tensor::from_vec(values, dims, &device)?)?;
        }
    }
    let mut opt = candle_nn::AdamW::new(
        varmap.all_vars(),
        candle_nn::ParamsAdamW {
            lr: 1e-3,
            weight_decay: 1e-4,
            ..Default::default()
        },
    )?;
    let batch = 256;
    let mut order: Vec<usize> = (0..samples).collect();
    let mut losses = Vec::with_capacity(epochs);
    for _ in 0..epochs {
        rng.shuffle(&mut order);
        let (mut total, mut batches) = (0.0f32, 0usize);
        for chunk in order.chunks(batch) {
            let mut bx = Vec::with_capacity(chunk.len() * INPUT);
            let mut by = Vec::with_capacity(chunk.len() * OUTPUT);
            for &i in chunk {
                bx.extend_from_slice(&xs[i * INPUT..(i + 1) * INPUT]);
                by.extend_from_slice(&ys[i * OUTPUT..(i + 1) * OUTPUT]);
            }
            let x = Tensor::from_vec(bx, (chunk.len(), INPUT), &device)?;
            let y = Tensor::from_vec(by, (chunk.len(), OUTPUT), &device)?;
            let loss = (net.forward(&x)? - y)?.abs()?.mean_all()?;
            opt.backward_step(&loss)?;
            total += loss.to_scalar::<f32>()?;
            batches += 1;
        }
        losses.push(total / batches.max(1) as f32);
    }
    let path = std::env::temp_dir().join(format!(
        "pulse-models-{}-{seed}.safetensors",
        std::process::id()
    ));
    varmap.save(&path)?;
    let weights = std::fs::read(&path)?;
    let _ = std::fs::remove_file(&path);
    Ok(Trained {
        weights,
        samples,
        losses,
    })
}

/// A synthetic daily series on the log scale, to show the network shapes real corpora have
/// few of: weekly patterns of every strength, trends, yearly waves, autocorrelated noise,
/// level shifts and holiday-like dips.
pub fn synthetic(rng: &mut fastrand::Rng, days: usize) -> Vec<f64> {
    let normal = |rng: &mut fastrand::Rng| {
        let u1 = rng.f64().max(1e-12);
        (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * rng.f64()).cos()
    };
    let mut week: Vec<f64> = (0..7).map(|_| normal(rng)).collect();
    let mean = week.iter().sum::<f64>() / 7.0;
    let amplitude = rng.f64() * 0.6;
    for w in &mut week {
        *w = (*w - mean) * amplitude;
    }
    let mut level = 1.0 + rng.f64() * 9.0;
    let slope = normal(rng) * 0.002;
    let yearly = rng.f64() * 0.3;
    let phase = rng.f64() * std::f64::consts::TAU;
    let phi = rng.f64() * 0.9;
    let sigma = 0.02 + rng.f64() * 0.28;
    let mut noise = 0.0;
    (0..days)
        .map(|t| {
            if rng.f64() < 1.0 / 200.0 {
                level += normal(rng) * 0.3;
            }
            noise = phi * noise + sigma * normal(rng);
            let dip = if rng.f64() < 0.01 {
                -(0.2 + 0.8 * rng.f64())
            } else {
                0.0
            };
            let t = t as f64;
            (level
                + slope * t
                + week[(t as usize) % 7]
                + yearly * (std::f64::consts::TAU * t / 365.25 + phase).sin()
                + noise
                + dip)
                .max(0.0)
        })
        .collect()
}
