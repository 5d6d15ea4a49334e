//! The CLI contract, through the built binary: output shapes, bad input messages and exit codes.

use std::io::Write;
use std::process::{Command, Output};

fn run(args: &[&str], input: &str) -> Output {
    let mut file = tempfile::NamedTempFile::new().expect("temp file");
    file.write_all(input.as_bytes()).expect("write");
    let path = file.path().to_str().expect("path").to_owned();
    let mut all: Vec<&str> = args.to_vec();
    all.extend(["--input", &path]);
    Command::new(env!("CARGO_BIN_EXE_pulse-models"))
        .args(&all)
        .output()
        .expect("run")
}

fn daily(days: usize) -> String {
    let mut s = String::from("timestamp,value\n");
    let start = chrono::NaiveDate::from_ymd_opt(2024, 1, 1).expect("date");
    for d in 0..days {
        let date = start + chrono::Duration::days(d as i64);
        let v = 100.0 + 30.0 * ((d % 7) as f64) + (d as f64 * 7.3).sin() * 5.0;
        s.push_str(&format!("{}T00:00:00Z,{v:.1}\n", date.format("%Y-%m-%d")));
    }
    s
}

#[test]
fn forecast_prints_the_header_and_one_row_per_period_after_the_last_input() {
    let out = run(&["forecast", "--horizon", "7"], &daily(120));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).expect("utf-8");
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], "timestamp,forecast,lo80,hi80,lo95,hi95,model");
    assert_eq!(lines.len(), 8);
    assert!(
        lines[1].starts_with("2024-04-30T00:00:00Z,"),
        "{}",
        lines[1]
    );
    assert!(
        lines[7].starts_with("2024-05-06T00:00:00Z,"),
        "{}",
        lines[7]
    );
    for line in &lines[1..] {
        let f: Vec<f64> = line
            .split(',')
            .skip(1)
            .take(5)
            .map(|v| v.parse().expect("number"))
            .collect();
        assert!(
            f[3] <= f[1] && f[1] <= f[0] && f[0] <= f[2] && f[2] <= f[4],
            "{line}"
        );
    }
}

#[test]
fn detect_prints_one_scored_row_per_input_row_in_input_order() {
    let input =
        "timestamp,value\n2014-03-09 03:00:00,1\n2014-03-09 03:00:00,2\n2014-03-09 02:05:00,3.5\n";
    let out = run(&["detect"], input);
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8(out.stdout).expect("utf-8"),
        "timestamp,value,anomaly_score\n2014-03-09 03:00:00,1,0\n2014-03-09 03:00:00,2,0\n2014-03-09 02:05:00,3.5,0\n"
    );
}

#[test]
fn backtest_prints_its_accuracy_over_eight_weekly_cuts() {
    let out = run(&["backtest"], &daily(200));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).expect("utf-8");
    for metric in [
        "mase,",
        "smape,",
        "accuracy,",
        "coverage80,",
        "coverage95,",
        "cuts,8",
        "points,56",
    ] {
        assert!(text.contains(metric), "{metric} in {text}");
    }
}

#[test]
fn each_bad_input_is_one_message_naming_the_row_and_exit_code_2() {
    let cases: &[(&[&str], &str, &str)] = &[
        (&["forecast"], "", "empty"),
        (
            &["forecast"],
            "day,value\n2024-01-01,1\n",
            "no `timestamp` column",
        ),
        (
            &["detect"],
            "timestamp,value\n2024-01-01,1\n2024-01-02,x\n",
            "line 3",
        ),
        (
            &["forecast"],
            "timestamp,value\n2024-01-01,1\n2024-01-02,NaN\n",
            "line 3",
        ),
        (
            &["backtest"],
            "timestamp,value\n2024-01-02,1\n2024-01-01,1\n",
            "line 3",
        ),
        (
            &["forecast"],
            "timestamp,value\n2024-01-01,1\n2024-01-01,1\n",
            "line 3",
        ),
        (
            &["forecast"],
            "timestamp,value\n2024-01-01,1\n2024-01-02,1\n",
            "too short a history: 2",
        ),
        (&["backtest"], &daily(10), "too short a history"),
        (
            &["forecast"],
            "timestamp,value\n2024-01-01T00:00:00Z,1\n2024-01-01T00:00:01Z,1\n2024-01-01T00:00:02Z,1\n2034-01-01T00:00:00Z,1\n",
            "too sparse",
        ),
    ];
    for (args, input, expected) in cases {
        let out = run(args, input);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?} {input:?}: {stderr}");
        assert!(stderr.contains(expected), "{args:?} {input:?}: {stderr}");
        assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
        assert!(out.stdout.is_empty());
    }
}

#[test]
fn a_short_history_says_which_simpler_model_it_used() {
    let out = run(&["forecast", "--horizon", "3"], &daily(10));
    let text = String::from_utf8(out.stdout).expect("utf-8");
    assert!(
        text.lines()
            .nth(1)
            .is_some_and(|l| l.ends_with("seasonal_naive (short history)")),
        "{text}"
    );
}

/// `days` days of hourly values on a daily wave, day 30 with half its swing, stamped `step`
/// seconds apart.
fn hourly_wave(days: usize, step: i64) -> String {
    let mut rng = fastrand::Rng::with_seed(4);
    let mut s = String::from("timestamp,value\n");
    for h in 0..days * 24 {
        let wave = (std::f64::consts::TAU * (h % 24) as f64 / 24.0).sin();
        let amplitude = if h / 24 == 30 { 20.0 } else { 40.0 };
        let at = chrono::DateTime::from_timestamp(1_704_067_200 + h as i64 * step, 0).expect("t");
        let v = 100.0 + amplitude * wave + 6.0 * (rng.f64() - 0.5);
        s.push_str(&format!("{},{v:.2}\n", at.format("%Y-%m-%dT%H:%M:%SZ")));
    }
    s
}

/// Rows of `detect`'s output at or above the alarm, by row index.
fn alarmed(out: &Output) -> Vec<usize> {
    let text = String::from_utf8_lossy(&out.stdout);
    // The rows after the header line.
    let rows = text.split_once('\n').map_or("", |(_, rows)| rows);
    rows.lines()
        .enumerate()
        .filter(|(_, l)| {
            l.rsplit(',')
                .next()
                .and_then(|s| s.parse::<f64>().ok())
                .is_some_and(|s| s >= pulse_models::detect::ALARM)
        })
        .map(|(i, _)| i)
        .collect()
}

#[test]
fn detect_follows_the_days_its_timestamps_space_out() {
    // Given hourly rows whose day 30 has half the usual swing (no value or step it lacks)
    let hourly = run(&["detect"], &hourly_wave(40, 3_600));
    // Then the day is an alarm: the rows' spacing makes 24 a day, whose shape is followed
    assert!(
        alarmed(&hourly)
            .iter()
            .any(|i| (30 * 24..31 * 24).contains(i)),
        "{:?}",
        alarmed(&hourly)
    );
    // And the same values 7 minutes apart (no whole number of rows a day) are not followed by
    // day, and the day goes unseen
    let odd = run(&["detect"], &hourly_wave(40, 420));
    assert!(
        !alarmed(&odd).iter().any(|i| (30 * 24..31 * 24).contains(i)),
        "{:?}",
        alarmed(&odd)
    );
}
