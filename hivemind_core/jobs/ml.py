"""machine_learning jobs: a parameter grid scored by k-fold cross-validation.

The dataset is stored once, as one columnar blob that every subtask reads.

Evaluations: the grid's combinations (:meth:`GridSearchSpec.combinations`,
last parameter varying fastest) times the folds; evaluation ``e`` scores
combination ``e // folds`` on fold ``e % folds``. Subtask ``u`` of ``U`` runs
evaluations ``u*E//U`` up to ``(u+1)*E//U`` (``E`` evaluations), so subtasks are
balanced and the answer does not depend on how many there are.

Folds (reproducible for a given seed): rows whose ``target`` is missing are
left out; the remaining ``n`` rows, in input order, get fold numbers from
``numpy.random.default_rng(seed).permutation(n)`` cut into ``folds``
contiguous parts (``numpy.array_split``): the rows at the positions in part
``f`` form fold ``f``. The test frame of fold ``f`` is those rows, the train
frame all others, both in input order with a fresh 0..m-1 index.

Result: one row per combination — the parameters, then for every metric
``<metric>_mean``, ``<metric>_std`` (ddof=1) and ``<metric>_fold1`` ...
``<metric>_fold<k>`` — best first by the ranking metric's mean (``maximize``),
ties in grid order, NaN last.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
import pandas as pd

from hivemind_core.jobs.job_types import GridSearchSpec
from hivemind_core.jobs.script import ScriptError, call_user, load_function

FIT_SCORE_USAGE = "fit_score(train, test, params) that returns a number or a dict of numbers"
SCORE_COLUMNS = ["combo", "fold", "metric", "value"]   # what a subtask returns, one row per metric
DEFAULT_METRIC = "score"                               # the name of a plain-number score


def fold_ids(n_rows: int, folds: int, seed: int) -> np.ndarray:
    """Fold number (0..folds-1) of each of ``n_rows`` rows: a seeded permutation in contiguous parts."""
    ids = np.empty(n_rows, dtype=np.int64)
    for fold, part in enumerate(np.array_split(np.random.default_rng(seed).permutation(n_rows), folds)):
        ids[part] = fold
    return ids


def unit_range(unit: int, units: int, evaluations: int) -> range:
    """The evaluations subtask ``unit`` of ``units`` runs (balanced, contiguous, covering all)."""
    return range(unit * evaluations // units, (unit + 1) * evaluations // units)


def usable_rows(df: pd.DataFrame, target: str | None) -> pd.DataFrame:
    """The rows cross-validation uses: those with a target value (all rows without a target)."""
    if target is None:
        return df
    return df[df[target].notna()].reset_index(drop=True)


def _number(value: Any, what: str) -> float:
    if isinstance(value, np.ndarray) and value.ndim == 0:
        value = value.item()
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise ScriptError(f"script: fit_score must return a number or a dict of numbers; {what} is "
                          f"{type(value).__name__}")
    return float(value)


def metrics_of(score: Any) -> dict[str, float]:
    """A fit_score result as {metric name: value} (a plain number is the metric ``score``)."""
    if not isinstance(score, Mapping):
        return {DEFAULT_METRIC: _number(score, "its result")}
    if not score:
        raise ScriptError("script: fit_score returned an empty dict; return a number or {\"metric\": number}")
    out = {}
    for name, value in score.items():
        if not isinstance(name, str) or not name:
            raise ScriptError(f"script: fit_score's metric names must be non-empty text, got {name!r}")
        out[name] = _number(value, f"metric {name!r}")
    return out


def evaluate(script: str, df: pd.DataFrame, search: GridSearchSpec, evaluations: Iterable[int]) -> pd.DataFrame:
    """Run ``fit_score`` for the given evaluations (on a worker); one row per (combo, fold, metric)."""
    fit_score = load_function(script, "fit_score", FIT_SCORE_USAGE)
    df = usable_rows(df, search.target)
    ids = fold_ids(len(df), search.folds, search.seed)
    combos = search.combinations()
    rows: list[tuple[int, int, str, float]] = []
    by_fold: dict[int, list[int]] = {}
    for e in evaluations:
        combo, fold = divmod(e, search.folds)
        by_fold.setdefault(fold, []).append(combo)
    for fold, fold_combos in sorted(by_fold.items()):   # one train/test split per fold, reused
        in_test = ids == fold
        train, test = df[~in_test].reset_index(drop=True), df[in_test].reset_index(drop=True)
        for combo in fold_combos:
            # copies, so a script that changes its inputs cannot affect the next evaluation
            score = call_user(fit_score, train.copy(), test.copy(), dict(combos[combo]))
            rows += [(combo, fold, name, value) for name, value in metrics_of(score).items()]
    return pd.DataFrame(rows, columns=SCORE_COLUMNS).astype({"combo": "int64", "fold": "int64", "value": "float64"})


def summarize(parts: Iterable[pd.DataFrame], search: GridSearchSpec) -> pd.DataFrame:
    """The result table from every subtask's scores (at the master)."""
    scores = pd.concat(list(parts), ignore_index=True).sort_values(["combo", "fold"], kind="stable")
    combos = search.combinations()
    metrics = list(dict.fromkeys(scores["metric"]))
    expected = len(combos) * search.folds
    counts = scores.groupby("metric", sort=False).size()
    uneven = [m for m in metrics if counts[m] != expected]
    if uneven or scores.duplicated(["combo", "fold", "metric"]).any():
        raise ScriptError(f"script: fit_score must return the same metrics for every parameter combination "
                          f"and fold; {uneven[0] if uneven else metrics[0]!r} is missing or repeated somewhere")
    rank = search.metric or metrics[0]
    if rank not in metrics:
        raise ScriptError(f"metric: fit_score returned no metric {rank!r}; it returned: {', '.join(metrics)}")
    columns = search.parameters + [f"{m}_{s}" for m in metrics
                                   for s in ("mean", "std", *(f"fold{f + 1}" for f in range(search.folds)))]
    clash = next((c for c in columns if columns.count(c) > 1), None)
    if clash is not None:
        raise ScriptError(f"script: the result would have two columns named {clash!r}; rename the parameter "
                          "or the metric")
    out = pd.DataFrame(combos, columns=search.parameters)
    for metric in metrics:
        mine = scores[scores["metric"] == metric]
        values = np.full((len(combos), search.folds), np.nan)
        values[mine["combo"].to_numpy(), mine["fold"].to_numpy()] = mine["value"].to_numpy()
        out[f"{metric}_mean"] = values.mean(axis=1)
        out[f"{metric}_std"] = values.std(axis=1, ddof=1)
        for fold in range(search.folds):
            out[f"{metric}_fold{fold + 1}"] = values[:, fold]
    out = out.sort_values(f"{rank}_mean", ascending=not search.maximize, kind="stable", na_position="last")
    return out.reset_index(drop=True)
