use super::*;

/// Standard normal draws (Box–Muller) from a seeded generator.
fn normal(rng: &mut fastrand::Rng) -> f64 {
    let u1 = rng.f64().max(1e-12);
    let u2 = rng.f64();
    (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
}

const WEEK: [f64; 7] = [1.0, 1.15, 1.2, 1.1, 1.05, 0.7, 0.6];

/// Daily counts around 200 with a weekly pattern and multiplicative noise of 8 %.
fn draw(rng: &mut fastrand::Rng, n: usize) -> Vec<f64> {
    (0..n)
        .map(|t| (200.0 * WEEK[t % 7] * (0.08 * normal(rng)).exp()).round())
        .collect()
}

#[test]
fn a_weekly_pattern_is_recovered_and_intervals_hold_their_nominal_rate() {
    // Given many draws of a series whose truth is known
    let mut rng = fastrand::Rng::with_seed(7);
    let (mut inside80, mut inside95, mut total) = (0usize, 0usize, 0usize);
    let mut pattern_error = 0.0;
    for _ in 0..60 {
        let series = draw(&mut rng, 365 + 7);
        let (history, future) = series.split_at(365);
        // When it is forecast a week ahead
        let f = forecast(history, 7, 7).expect("a year is enough");
        // Then the forecast follows the weekly pattern, and the truth falls inside the
        // intervals about as often as they claim
        for k in 0..7 {
            let expected = 200.0 * WEEK[(365 + k) % 7];
            pattern_error += (f.values[k] - expected).abs() / expected;
            inside80 += usize::from(f.lo80[k] <= future[k] && future[k] <= f.hi80[k]);
            inside95 += usize::from(f.lo95[k] <= future[k] && future[k] <= f.hi95[k]);
            total += 1;
            assert!(
                f.lo95[k] <= f.lo80[k]
                    && f.lo80[k] <= f.values[k]
                    && f.values[k] <= f.hi80[k]
                    && f.hi80[k] <= f.hi95[k]
            );
        }
    }
    let (c80, c95) = (
        inside80 as f64 / total as f64,
        inside95 as f64 / total as f64,
    );
    assert!(
        pattern_error / (total as f64) < 0.04,
        "mean relative error {}",
        pattern_error / total as f64
    );
    assert!((0.72..=0.88).contains(&c80), "80 % interval covered {c80}");
    assert!((0.90..=0.99).contains(&c95), "95 % interval covered {c95}");
}

#[test]
fn intervals_widen_when_the_series_has_just_become_noisier() {
    // Given a year of steady counts, and the same year whose last four weeks are four times
    // as noisy
    let mut rng = fastrand::Rng::with_seed(11);
    let noise: Vec<f64> = (0..365).map(|_| normal(&mut rng)).collect();
    let series = |late: f64| -> Vec<f64> {
        (0..365)
            .map(|t| {
                let sigma = if t >= 337 { 0.08 * late } else { 0.08 };
                (200.0 * WEEK[t % 7] * (sigma * noise[t]).exp()).round()
            })
            .collect()
    };
    // When both are forecast a week ahead
    let steady = forecast(&series(1.0), 7, 7).expect("steady");
    let noisy = forecast(&series(4.0), 7, 7).expect("noisy");
    // Then the 95 % interval after the noisy weeks is much wider: the calibration errors are
    // scaled by the volatility at their origin, not averaged over the year
    let width = |f: &Forecast| (f.hi95[0] / f.lo95[0].max(1.0)).ln();
    assert!(
        width(&noisy) > 3.5 * width(&steady),
        "steady {} noisy {}",
        width(&steady),
        width(&noisy)
    );
}

#[test]
fn a_short_history_falls_back_and_says_so() {
    let f = forecast(&[3.0, 4.0, 5.0, 4.0, 3.0], 7, 7).expect("five days");
    assert_eq!(f.values.len(), 7);
    assert_eq!(f.model, "naive (short history)");
    let f = forecast(&draw(&mut fastrand::Rng::with_seed(1), 20), 7, 7).expect("twenty days");
    assert_eq!(f.model, "seasonal_naive (short history)");
    assert_eq!(
        forecast(&[1.0, 2.0], 7, 7),
        Err(ForecastError::TooShort { rows: 2, needed: 3 })
    );
}

#[test]
fn an_outlier_in_the_history_does_not_move_the_forecast() {
    let mut rng = fastrand::Rng::with_seed(3);
    let clean = draw(&mut rng, 200);
    let mut spiked = clean.clone();
    spiked[150] *= 20.0;
    let a = forecast(&clean, 7, 7).expect("clean");
    let b = forecast(&spiked, 7, 7).expect("spiked");
    for k in 0..7 {
        assert!(
            (a.values[k] - b.values[k]).abs() / a.values[k] < 0.05,
            "{a:?} vs {b:?}"
        );
    }
}

#[test]
fn negative_values_are_forecast_on_their_own_scale() {
    let y: Vec<f64> = (0..120)
        .map(|t| -50.0 + 10.0 * ((t % 7) as f64) + 0.1 * t as f64)
        .collect();
    let f = forecast(&y, 7, 7).expect("forecast");
    assert!(f.values.iter().all(|v| v.is_finite()));
    assert!(f.values.iter().any(|v| *v < 0.0));
}

#[test]
fn the_committed_network_loads_and_gives_its_recorded_forecast() {
    // Given the weights compiled into the binary and a fixed input
    assert!(
        neural::model().is_some(),
        "models/weights/forecast-mlp.safetensors does not load"
    );
    let z: Vec<f64> = (0..120)
        .map(|t| 3.0 + 0.3 * (std::f64::consts::TAU * t as f64 / 7.0).sin() + 0.001 * t as f64)
        .collect();
    // When the network forecasts a week
    let f = neural::predict(&z, 7).expect("a forecast");
    // Then it gives the outputs recorded when the weights were committed (a silent change of
    // weights or format fails here)
    let recorded: [f64; 7] = [
        3.353_492_5,
        3.413_122_4,
        3.247_954_9,
        2.987_753_7,
        2.818_769_1,
        2.889_226_8,
        3.125_471_7,
    ];
    for (got, want) in f.iter().zip(recorded) {
        assert!((got - want).abs() < 1e-5, "{f:?}");
    }
}

#[test]
fn a_batch_of_histories_gets_the_forecasts_each_gets_alone() {
    // Given histories of different lengths and shapes, and a horizon past one pass of the
    // network (its own forecast fed back)
    let mut rng = fastrand::Rng::with_seed(3);
    let series: Vec<Vec<f64>> = (0..5).map(|_| neural::synthetic(&mut rng, 90)).collect();
    let histories: Vec<&[f64]> = series
        .iter()
        .enumerate()
        .map(|(i, z)| &z[..60 + 5 * i])
        .collect();
    // When they are forecast in one batch and one by one
    let batch = neural::predict_many(&histories, 10).expect("a batch");
    // Then each forecast is the one it gets alone (to f32's rounding)
    for (z, together) in histories.iter().zip(&batch) {
        let alone = neural::predict(z, 10).expect("a forecast");
        assert_eq!(together.len(), 10);
        for (a, b) in alone.iter().zip(together) {
            assert!(
                (a - b).abs() <= 1e-5 * (1.0 + a.abs()),
                "{alone:?} vs {together:?}"
            );
        }
    }
    // And a history shorter than the network's input gets none
    assert!(neural::predict_many(&[&series[0][..10]], 7).is_none());
}

#[test]
fn the_lstm_it_was_measured_against_trains_reproducibly_and_forecasts() {
    // Given a few synthetic series
    let mut rng = fastrand::Rng::with_seed(8);
    let series: Vec<Vec<f64>> = (0..2).map(|_| neural::synthetic(&mut rng, 100)).collect();
    // When the LSTM is trained twice with one seed
    let a = neural::train(&series, 9, 1, neural::Arch::Lstm).expect("train");
    let b = neural::train(&series, 9, 1, neural::Arch::Lstm).expect("train");
    // Then the weights are the same, and they load and forecast a week of finite values
    assert_eq!(a.weights, b.weights);
    let net = neural::Net::load(a.weights, neural::Arch::Lstm).expect("load");
    let week = neural::predict_with(&net, &[&series[0]], 7).expect("a forecast");
    assert!(
        week[0].len() == 7 && week[0].iter().all(|v| v.is_finite()),
        "{week:?}"
    );
    // (the committed weights are the MLP's: read as an LSTM they are refused)
    assert!(neural::Net::load(b.weights.clone(), neural::Arch::Mlp).is_err());
}

#[test]
fn training_with_one_seed_gives_the_same_weights_twice() {
    let mut rng = fastrand::Rng::with_seed(5);
    let series: Vec<Vec<f64>> = (0..3).map(|_| neural::synthetic(&mut rng, 120)).collect();
    let a = neural::train(&series, 9, 1, neural::Arch::Mlp).expect("train");
    let b = neural::train(&series, 9, 1, neural::Arch::Mlp).expect("train");
    assert_eq!(a.weights, b.weights);
    assert_eq!(a.samples, 3 * (120 - neural::INPUT - neural::OUTPUT + 1));
}
