"""A seeded stand-in for the public e-commerce fraud data, in its file layout.

`write_fraud_files(dir, n=2_500, seed=0)` writes `fraud_data.csv.gz` and `ip_to_country.csv.gz`
with the columns, formats and rough mix of the real files (about 10% fraud; fraudsters buy
soon after signup and reuse devices and IP addresses), so `experiments/specs/ecommerce_fraud.yaml`
reads them unchanged with `--base-dir` or `--table`. No real value is copied.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

#: File names of the rows and the IP ranges, as in the real data's folder.
ROWS_FILE = "fraud_data.csv.gz"
RANGES_FILE = "ip_to_country.csv.gz"
_COUNTRIES = ("United States", "China", "Japan", "Germany", "Brazil", "Korea")
_TIME_FORMAT = "%m/%d/%Y %H:%M"


def make_fraud_rows(n: int = 2_500, *, seed: int = 0) -> pd.DataFrame:
    """`n` first purchases in the real file's columns (times as M/D/YYYY H:MM text)."""
    rng = np.random.default_rng(seed)
    fraud = rng.random(n) < 0.10
    signup = pd.Timestamp("2015-01-01") + pd.to_timedelta(rng.uniform(0, 200, n), unit="D")
    quick = fraud & (rng.random(n) < 0.55)
    delay_s = np.where(quick, rng.uniform(0, 50, n), rng.exponential(50 * 86_400, n) + 3_600)
    purchase = signup + pd.to_timedelta(delay_s.round(), unit="s")
    devices = np.array([f"D{i:012d}" for i in range(n)], dtype=object)
    ips = rng.uniform(1e7, 4.2e9, n).round(1)
    donors = rng.integers(0, n, n)
    same_device = fraud & (rng.random(n) < 0.4)
    same_ip = same_device & (rng.random(n) < 0.7) | (rng.random(n) < 0.01)
    devices[same_device] = devices[donors[same_device]]
    ips[same_ip] = ips[donors[same_ip]]
    value = np.clip(rng.gamma(4.0, 9.0, n) + fraud * rng.uniform(0, 25, n), 9, 154).round()
    return pd.DataFrame(
        {
            "user_id": np.arange(100_000, 100_000 + n),
            "signup_time": signup.strftime(_TIME_FORMAT),
            "purchase_time": purchase.strftime(_TIME_FORMAT),
            "purchase_value": value.astype(int),
            "device_id": devices,
            "source": rng.choice(["SEO", "Ads", "Direct"], n),
            "browser": rng.choice(["Chrome", "IE", "Safari", "FireFox", "Opera"], n),
            "sex": rng.choice(["M", "F"], n),
            "age": rng.integers(18, 74, n),
            "ip_address": ips,
            "class": fraud.astype(int),
        }
    )


def make_ip_ranges(*, seed: int = 0) -> pd.DataFrame:
    """Contiguous IP ranges up to 3.35e9 (higher addresses get no country, as in the real data)."""
    rng = np.random.default_rng(seed + 1)
    bounds = np.linspace(1e7, 3.35e9, 61).astype(np.int64)
    return pd.DataFrame(
        {
            "lower_bound_ip_address": bounds[:-1],
            "upper_bound_ip_address": bounds[1:] - 1,
            "country": rng.choice(_COUNTRIES, len(bounds) - 1),
        }
    )


def write_fraud_files(out_dir: Path, *, n: int = 2_500, seed: int = 0) -> dict[str, Path]:
    """Write both files into `out_dir`; returns the table name -> path the spec uses."""
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {"rows": out_dir / ROWS_FILE, "ip_country": out_dir / RANGES_FILE}
    make_fraud_rows(n, seed=seed).to_csv(paths["rows"], index=False)
    make_ip_ranges(seed=seed).to_csv(paths["ip_country"], index=False)
    return paths
