"""The parts of a job spec that belong to the ``machine_learning`` and
``simulation`` job types (top-level fields next to ``script``):

machine_learning — a grid search with k-fold cross-validation::

    {"type": "machine_learning", "script": "def fit_score(train, test, params): ...",
     "grid": {"alpha": [0.1, 1.0], "degree": [1, 2]}, "folds": 5, "seed": 0,
     "target": "arr_delay", "maximize": false, "metric": "rmse"}

simulation — seeded Monte Carlo::

    {"type": "simulation", "script": "def simulate(rng, n): ...",
     "trials": 1000000, "seed": 42, "split": {"shards": 8}}

``seed`` defaults to 0, so a spec without one is still reproducible.
"""

from __future__ import annotations

import itertools
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from hivemind_core.jobs.fields import fail, flag, text, whole

ML_FIELDS = ("grid", "folds", "seed", "target", "maximize", "metric")
SIMULATION_FIELDS = ("trials", "seed")
TYPE_FIELDS = tuple(dict.fromkeys(ML_FIELDS + SIMULATION_FIELDS))
MAX_FOLDS = 1000
MAX_COMBINATIONS = 10_000
MAX_TRIALS = 10**12
MAX_SEED = 2**63 - 1


@dataclass(frozen=True)
class GridSearchSpec:
    """What a machine_learning job searches: every grid combination scored on every fold."""

    grid: tuple[tuple[str, tuple[Any, ...]], ...]   # (parameter, values) in spec order
    folds: int = 5
    seed: int = 0
    target: str | None = None      # rows where it is missing are left out before folds are drawn
    maximize: bool = True          # higher scores are better (false: lower, e.g. an error)
    metric: str | None = None      # which metric ranks the combinations (default: the first returned)

    @property
    def parameters(self) -> list[str]:
        return [name for name, _ in self.grid]

    def combinations(self) -> list[dict[str, Any]]:
        """Every parameter combination, in a fixed order (the last parameter varies fastest)."""
        names = self.parameters
        return [dict(zip(names, values, strict=True))
                for values in itertools.product(*(vals for _, vals in self.grid))]

    @property
    def evaluations(self) -> int:
        return math.prod(len(vals) for _, vals in self.grid) * self.folds

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"grid": {name: list(vals) for name, vals in self.grid},
                               "folds": self.folds, "seed": self.seed, "maximize": self.maximize}
        if self.target is not None:
            out["target"] = self.target
        if self.metric is not None:
            out["metric"] = self.metric
        return out


@dataclass(frozen=True)
class SimulationSpec:
    """A Monte Carlo run: ``trials`` in total, split over shards with disjoint seed streams."""

    trials: int
    seed: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {"trials": self.trials, "seed": self.seed}


def _value_kind(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool):
        return "true/false"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "text"
    return "other"


def _grid_values(raw: Any, path: str) -> tuple[Any, ...]:
    if not isinstance(raw, list) or not raw:
        raise fail(path, "must be a non-empty list of values to try, e.g. [0.1, 1.0, 10.0]")
    kinds = set()
    for i, value in enumerate(raw):
        kind = _value_kind(value)
        if kind == "other":
            raise fail(f"{path}[{i}]", "must be a plain value (number, text, true/false or null), "
                       f"got {json.dumps(value)}")
        if isinstance(value, float) and not math.isfinite(value):
            raise fail(f"{path}[{i}]", "must be a finite number")
        if kind is not None:
            kinds.add(kind)
    if len(kinds) > 1:
        raise fail(path, f"mixes {' and '.join(sorted(kinds))} values; give one kind per parameter "
                   "(it becomes one column of the result)")
    keys = [json.dumps(v) for v in raw]
    dupes = [v for v, k in zip(raw, keys, strict=True) if keys.count(k) > 1]
    if dupes:
        raise fail(path, f"lists {json.dumps(dupes[0])} twice")
    return tuple(raw)


def _seed(obj: Mapping[str, Any]) -> int:
    return whole(obj["seed"], "seed", 0, MAX_SEED) if obj.get("seed") is not None else 0


def parse_grid_search(obj: Mapping[str, Any]) -> GridSearchSpec:
    """The machine_learning fields of a spec (``obj`` is the whole spec object)."""
    raw = obj.get("grid")
    if raw is None:
        raise fail("grid", "a machine_learning job needs a grid: {\"parameter\": [values to try], ...}")
    if not isinstance(raw, Mapping):
        raise fail("grid", "must be a JSON object mapping each parameter to a list of values, "
                   f"got {type(raw).__name__}")
    if not raw:
        raise fail("grid", "must name at least one parameter with a list of values to try")
    grid = []
    for name, values in raw.items():
        text(name, "grid", allow_empty=False)
        grid.append((name, _grid_values(values, f"grid.{name}")))
    combos = math.prod(len(vals) for _, vals in grid)
    if combos > MAX_COMBINATIONS:
        raise fail("grid", f"has {combos} parameter combinations; at most {MAX_COMBINATIONS} are allowed")
    folds = whole(obj["folds"], "folds", 2, MAX_FOLDS) if obj.get("folds") is not None else 5
    target = text(obj["target"], "target") if obj.get("target") is not None else None
    maximize = flag(obj["maximize"], "maximize") if obj.get("maximize") is not None else True
    metric = text(obj["metric"], "metric") if obj.get("metric") is not None else None
    return GridSearchSpec(tuple(grid), folds, _seed(obj), target, maximize, metric)


def parse_simulation(obj: Mapping[str, Any]) -> SimulationSpec:
    """The simulation fields of a spec (``obj`` is the whole spec object)."""
    if obj.get("trials") is None:
        raise fail("trials", "a simulation job needs the total number of trials, e.g. \"trials\": 100000")
    return SimulationSpec(whole(obj["trials"], "trials", 1, MAX_TRIALS), _seed(obj))
