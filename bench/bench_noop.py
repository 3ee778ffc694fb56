"""2,000 ``noop`` subtasks through HiveMind's embedded cluster (2 workers) and through
Dask's LocalCluster (2 worker processes, 1 thread each), in the same run.

    .venv/bin/python bench/bench_noop.py [--tasks 2000] [--repeat 3]

Prints tasks/s for both and the ratio (HiveMind / Dask). Both sides are timed
from submit to every result being back: HiveMind's results are stored in the
node pool (one blob per distinct result) and the client waits until every
subtask is completed; Dask's are gathered to the client. Cluster start-up and
a warm-up round are excluded on both sides.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from hivemind_core.client import SubtaskSpec  # noqa: E402
from hivemind_core.cluster import EmbeddedCluster  # noqa: E402


def noop(x: int) -> int:
    return x


def run_hivemind(n: int, repeat: int) -> list[float]:
    rates = []
    with tempfile.TemporaryDirectory() as tmp, EmbeddedCluster(Path(tmp), workers=2, log_level="WARNING") as cluster:
        client = cluster.client()
        client.submit([SubtaskSpec(f"warm-{i}", "warm", "noop", params=str(i).encode()) for i in range(200)])
        client.wait("warm", timeout=120)
        for r in range(repeat):
            task = f"bench-{r}"
            specs = [SubtaskSpec(f"{task}-{i}", task, "noop", params=str(i).encode()) for i in range(n)]
            t0 = time.perf_counter()
            client.submit(specs)
            summary = client.wait(task, timeout=600, poll=0.01)
            elapsed = time.perf_counter() - t0
            assert summary.counts.get("completed") == n, summary
            rates.append(n / elapsed)
        client.close()
    return rates


def run_dask(n: int, repeat: int) -> list[float]:
    from dask.distributed import Client, LocalCluster

    rates = []
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster, \
            Client(cluster) as client:
        client.gather(client.map(noop, range(200), pure=False))
        for r in range(repeat):
            t0 = time.perf_counter()
            futures = client.map(noop, range(n), pure=False)
            results = client.gather(futures)
            elapsed = time.perf_counter() - t0
            assert results == list(range(n))
            rates.append(n / elapsed)
            del futures
    return rates


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=2000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(argv)
    hm = run_hivemind(args.tasks, args.repeat)
    dk = run_dask(args.tasks, args.repeat)
    hm_rate, dk_rate = statistics.median(hm), statistics.median(dk)
    print(f"noop x {args.tasks}, 2 workers, median of {args.repeat} runs")
    print(f"  HiveMind embedded cluster : {hm_rate:8.0f} tasks/s   runs: {', '.join(f'{r:.0f}' for r in hm)}")
    print(f"  Dask LocalCluster         : {dk_rate:8.0f} tasks/s   runs: {', '.join(f'{r:.0f}' for r in dk)}")
    print(f"  ratio HiveMind / Dask     : {hm_rate / dk_rate:8.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
