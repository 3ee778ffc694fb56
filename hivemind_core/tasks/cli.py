"""CLI for data jobs: ``submit``, ``status``, ``list``, ``cancel``, ``result``, ``delete``, ``nodes``.

``python -m hivemind_core submit SPEC.json DATA [--pool HOST:PORT] [--wait] [--output FILE]``

DATA is the dataset; a simulation reads none, so for it DATA is ``-`` or left out.

Without ``--pool`` and without ``HIVEMIND_NODE_POOL`` the commands use the
embedded cluster of the data dir (``HIVEMIND_DATA_DIR``): the one the app runs,
or one started for the command's duration (``submit``; ``delete`` starts only
the node pool). ``status``, ``list``, ``result``, ``cancel`` and ``nodes`` never
start a cluster: ``cancel`` records the cancellation in the master database and
tells the pool now if one runs, else the pool is told when the cluster next
starts, before any worker takes work; ``nodes`` says no cluster is running.
Commands act as the local admin (whoever can read the data dir already has
that power), or as ``--user NAME``. Bad input is reported in one line before
anything is queued.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path

from hivemind_core.client import NodePoolClient
from hivemind_core.config import Settings, get_settings
from hivemind_core.db import get_engine
from hivemind_core.errors import (
    ConfigError,
    HiveMindError,
    NotFoundError,
    ValidationError,
)
from hivemind_core.fileutil import check_output_path
from hivemind_core.jobs.inputs import open_job_input
from hivemind_core.jobs.names import printable
from hivemind_core.jobs.spec import parse_spec
from hivemind_core.principal import LOCAL_ADMIN, Principal, require_task_user
from hivemind_core.tasks import states
from hivemind_core.tasks.models import Task, as_utc
from hivemind_core.tasks.output import save_result
from hivemind_core.tasks.service import TaskService
from hivemind_core.units import fmt_bytes

POLL_S = 0.3
NO_DATA = "-"   # DATA for a job that reads none (a simulation)
BAR_WIDTH = 30


# ----------------------------------------------------------------- plumbing

def _settings(args: argparse.Namespace) -> Settings:
    settings = get_settings()
    if getattr(args, "pool", None):
        if not settings.cluster_token:
            raise ConfigError(f"--pool {args.pool} needs the node pool's cluster token: set HIVEMIND_CLUSTER_TOKEN "
                              "(it is in <the pool's data dir>/secrets/cluster_token)")
        settings = dataclasses.replace(settings, node_pool=args.pool)
    return settings


def _cli(args: argparse.Namespace, command: str) -> str:
    """``command`` as the user would type it again (with this call's --pool / --user)."""
    extra = "".join(f" --{flag} {getattr(args, flag)}" for flag in ("pool", "user") if getattr(args, flag, None))
    return f"python -m hivemind_core {command}{extra}"


def _principal(args: argparse.Namespace, settings: Settings) -> Principal:
    """Who runs a task command: the local admin, or ``--user`` (a viewer is refused, as by the REST API)."""
    if not getattr(args, "user", None):
        return LOCAL_ADMIN
    from hivemind_core.auth.users import get_user, principal_of

    user = get_user(args.user, engine=get_engine(settings))
    if user is None:
        raise NotFoundError(f"no user {args.user!r}; create it in the app's admin page first")
    return require_task_user(principal_of(user))


def _running_client(settings: Settings) -> NodePoolClient | None:
    """A client for a node pool that is already up (never starts one)."""
    if settings.node_pool:
        from hivemind_core.cluster import connect_cluster

        return connect_cluster(settings)[0]
    from hivemind_core.cluster import NODEPOOL_SUBDIR, _running_pool
    from hivemind_core.nodepool.auth import cluster_token_for

    pool_dir = settings.data_dir / NODEPOOL_SUBDIR
    if not (pool_dir / "endpoint.json").exists():
        return None
    return _running_pool(pool_dir, cluster_token_for(pool_dir))


@contextmanager
def _service(settings: Settings, *, start_cluster: bool,
             workers: int | None = None) -> Iterator[tuple[TaskService, bool]]:
    """(task service, whether this command started the embedded cluster).

    ``start_cluster``: connect (starting the embedded cluster if none runs, with
    ``workers`` workers if given); else use a running pool if there is one, or none
    (a service that reads and records, and tells the pool later)."""
    cluster = None
    engine = get_engine(settings)
    if start_cluster:
        from hivemind_core.tasks.connect import connect_master_cluster

        client, cluster = connect_master_cluster(settings, engine, workers=workers)
    else:
        client = _running_client(settings)
    try:
        yield TaskService(engine, client, settings), cluster is not None
    finally:
        if client is not None:
            client.close()
        if cluster is not None:
            cluster.stop()


def _when(ts: datetime | None) -> str:
    if ts is None:
        return "-"
    return as_utc(ts).astimezone().strftime("%Y-%m-%d %H:%M:%S")


def _bar(task: Task) -> str:
    filled = int(BAR_WIDTH * task.progress / 100)
    return (f"\r[{'#' * filled}{'.' * (BAR_WIDTH - filled)}] {task.progress:5.1f}%  "
            f"{task.subtasks_done}/{task.subtasks_total} shards  {task.status:<9}")


def _wait(service: TaskService, task_id: str, show: Callable[[Task], None] | None) -> Task:
    while True:
        task = service.sync_task(task_id)
        if task is None:
            raise NotFoundError(f"task {task_id} was deleted while waiting")
        if show:
            show(task)
        if task.status in states.FINAL:
            return task
        time.sleep(POLL_S)


# ----------------------------------------------------------------- commands

def cmd_submit(args: argparse.Namespace) -> int:
    spec_path = Path(args.spec)
    data_path = Path(args.data) if args.data not in (None, NO_DATA) else None
    try:
        spec_text = spec_path.read_bytes()
    except OSError as exc:
        raise ValidationError(f"spec: cannot read {spec_path}: {exc.strerror}", field="spec") from None
    if data_path is not None and not data_path.is_file():
        raise ValidationError(f"input: {data_path} is not a file", field="input")
    if args.output and not args.wait:
        raise ValidationError("--output needs --wait (or fetch it later: result ID --output FILE)")
    if args.output:
        check_output_path(args.output)   # a path the result cannot go to fails now, not after the job ran
    # Check spec and data before starting anything: bad input costs nothing and queues nothing.
    job = parse_spec(spec_text)
    open_job_input(job, data_path)
    input_name = data_path.name if data_path is not None else ""

    settings = _settings(args)
    who = _principal(args, settings)
    with _service(settings, start_cluster=True) as (service, owns_cluster):
        task = service.submit(who, job, data_path, input_name)
        reads = f"{task.input_rows} rows" if task.input_rows is not None else "no input data"
        print(f"submitted task {task.id}: {task.subtasks_total} shards, {reads}", flush=True)
        if not args.wait:
            if owns_cluster:
                print("note: no app is running the cluster for this data dir; the job stays queued and runs "
                      "when the app runs (or use --wait)", file=sys.stderr)
            return 0
        tty = sys.stderr.isatty()
        try:
            task = _wait(service, task.id, (lambda t: print(_bar(t), end="", file=sys.stderr, flush=True))
                         if tty else None)
        except KeyboardInterrupt:
            _interrupted(args, task.id, owns_cluster, tty)
            return 130
        if tty:
            print(file=sys.stderr)
    return _report_final(task, args.output)


def _interrupted(args: argparse.Namespace, task_id: str, owns_cluster: bool, tty: bool) -> None:
    """Ctrl-C stops the waiting, not the job: say so, and how to stop or watch it."""
    where = ("this command's embedded cluster stops now; the task resumes when the cluster next runs "
             "(the app, or another command that starts it)" if owns_cluster
             else "it keeps running on the cluster")
    print(("\n" if tty else "") + f"interrupted: stopped waiting for task {task_id}, which was NOT cancelled: "
          f"{where}.\n  cancel it:     {_cli(args, 'cancel ' + task_id)}\n"
          f"  check on it:   {_cli(args, 'status ' + task_id)}", file=sys.stderr)


def _report_final(task: Task, output: str | None) -> int:
    if task.status == states.COMPLETED:
        if output and task.result_path:
            save_result(Path(task.result_path), output)
            print(f"completed: {task.result_rows} rows written to {output}")
        else:
            print(f"completed: {task.result_rows} rows in {task.result_path}")
        return 0
    reason = printable(task.error, keep_newlines=True) or "no reason recorded"
    print(f"error: task {task.id} {task.status}: {reason}", file=sys.stderr)
    return 1


def cmd_status(args: argparse.Namespace) -> int:
    settings = _settings(args)
    who = _principal(args, settings)
    with _service(settings, start_cluster=False) as (service, _):
        if service.has_pool:
            service.sync_task(service.get(who, args.id).id)
        task = service.get(who, args.id)
        subs = service.subtasks(who, args.id)
    counts = Counter(s.status for s in subs)
    print(f"task      {task.id}  ({printable(task.name)})")
    print(f"owner     {task.owner}")
    print(f"status    {task.status}")
    print(f"progress  {task.progress:.1f}%  ({task.subtasks_done}/{task.subtasks_total} shards: "
          + ", ".join(f"{n} {st}" for st, n in sorted(counts.items())) + ")")
    if task.input_rows is None:
        print("input     none (a simulation reads no data)")
    else:
        print(f"input     {printable(task.input_name)}  ({task.input_rows} rows, {fmt_bytes(task.input_size)})")
    print(f"created   {_when(task.created_at)}   started {_when(task.started_at)}   "
          f"finished {_when(task.finished_at)}")
    if task.result_path:
        print(f"result    {task.result_path}  ({task.result_rows} rows)")
    if task.error:
        print(f"error     {printable(task.error, keep_newlines=True)}")
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    settings = _settings(args)
    who = _principal(args, settings)
    with _service(settings, start_cluster=False) as (service, _):
        tasks, total = service.list(who, args.status, args.offset, args.limit)
    print(f"{'ID':<17} {'STATUS':<10} {'PROGRESS':>8}  {'OWNER':<12} {'CREATED':<19}  NAME")
    for t in tasks:
        print(f"{t.id:<17} {t.status:<10} {t.progress:7.1f}%  {t.owner:<12} {_when(t.created_at):<19}  "
              f"{printable(t.name)}")
    shown = f"{args.offset + 1}-{args.offset + len(tasks)}" if tasks else "none"
    print(f"({shown} of {total} tasks)")
    return 0


def cmd_cancel(args: argparse.Namespace) -> int:
    """Recorded in the master database at once; the pool is told now if it runs, else when it starts."""
    settings = _settings(args)
    who = _principal(args, settings)
    with _service(settings, start_cluster=False) as (service, _):
        task = service.cancel(who, args.id)
    print(f"task {task.id} {task.status}")
    if task.cancel_pending:
        print("note: no node pool is reachable now; it is told when the cluster next starts, before any "
              "worker takes work, so no shard of this task runs", file=sys.stderr)
    return 0


def cmd_result(args: argparse.Namespace) -> int:
    settings = _settings(args)
    who = _principal(args, settings)
    check_output_path(args.output)
    with _service(settings, start_cluster=False) as (service, _):
        if service.has_pool:
            service.sync_task(service.get(who, args.id).id)
        path = service.result_path(who, args.id)
        task = service.get(who, args.id)
        save_result(path, args.output)
    print(f"{task.result_rows} rows written to {args.output}")
    return 0


def cmd_delete(args: argparse.Namespace) -> int:
    """The task, its subtasks, its result file and its blobs in the node pool (which must run:
    an embedded one is started without workers for this)."""
    settings = _settings(args)
    who = _principal(args, settings)
    with _service(settings, start_cluster=False) as (service, _):
        service.get(who, args.id)    # an unknown id fails here, before any pool is started
    with _service(settings, start_cluster=True, workers=0) as (service, _):
        service.delete(who, args.id)
    print(f"task {args.id} deleted, with its result and its data in the node pool")
    return 0


def cmd_nodes(args: argparse.Namespace) -> int:
    settings = _settings(args)
    with _service(settings, start_cluster=False) as (service, _):
        if not service.has_pool:
            raise NotFoundError(
                f"no cluster is running for the data dir {settings.data_dir}, so there are no nodes to list; "
                "start one with the app (streamlit run app.py), or run a job (submit ... --wait starts one for "
                "its duration), or pass --pool HOST:PORT")
        nodes = service.client.nodes()
    print(f"{'NAME':<16} {'STATUS':<8} {'CORES':>5} {'MEM MB':>7} {'SLOTS':>5} {'RUN':>4} {'CPU%':>6} "
          f"{'MEM%':>6}  {'HEARTBEAT':<10} ADDRESS")
    now = time.time()
    for n in nodes:
        age = f"{now - n.last_heartbeat:.0f}s ago" if n.last_heartbeat else "-"
        print(f"{n.name:<16} {n.status:<8} {n.cores:>5} {n.memory_mb:>7} {n.slots:>5} {n.running:>4} "
              f"{n.cpu_percent:>6.1f} {n.memory_percent:>6.1f}  {age:<10} {n.address}")
    print(f"({len(nodes)} nodes)")
    return 0


def _at_least(low: int) -> Callable[[str], int]:
    def parse(raw: str) -> int:
        try:
            value = int(raw)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{raw!r} is not a whole number") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"must be at least {low}, got {value}")
        return value
    return parse


def register(sub: argparse._SubParsersAction) -> None:
    def common(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
        p.add_argument("--pool", metavar="HOST:PORT",
                       help="node pool address (default: $HIVEMIND_NODE_POOL, else the embedded cluster)")
        p.add_argument("--user", metavar="NAME", help="act as this user of the app (default: local admin)")
        return p

    p = common(sub.add_parser("submit", help="submit a job: SPEC.json DATA"))
    p.add_argument("spec", metavar="SPEC.json", help="job spec (JSON, version 1)")
    p.add_argument("data", metavar="DATA", nargs="?",
                   help="dataset: CSV, TSV, Parquet or JSON Lines (a simulation reads none: - or leave it out)")
    p.add_argument("--wait", action="store_true", help="wait for the result (progress bar on a terminal)")
    p.add_argument("--output", metavar="FILE", help="with --wait: copy the result here")
    p.set_defaults(func=cmd_submit)

    p = common(sub.add_parser("status", help="show a task's status and progress"))
    p.add_argument("id", metavar="ID")
    p.set_defaults(func=cmd_status)

    p = common(sub.add_parser("list", help="list tasks, newest first"))
    p.add_argument("--status", choices=states.STATUSES, help="only tasks in this status")
    p.add_argument("--limit", type=_at_least(1), default=50, help="at most this many (default 50)")
    p.add_argument("--offset", type=_at_least(0), default=0, help="skip this many of the newest (default 0)")
    p.set_defaults(func=cmd_list)

    p = common(sub.add_parser("cancel", help="cancel a task (recorded at once; no cluster needs to run)"))
    p.add_argument("id", metavar="ID")
    p.set_defaults(func=cmd_cancel)

    p = common(sub.add_parser("result", help="save a completed task's result"))
    p.add_argument("id", metavar="ID")
    p.add_argument("--output", required=True, metavar="FILE")
    p.set_defaults(func=cmd_result)

    p = common(sub.add_parser("delete", help="delete a task with its result and its data in the node pool"))
    p.add_argument("id", metavar="ID")
    p.set_defaults(func=cmd_delete)

    p = common(sub.add_parser("nodes", help="list the node pool's workers (of a running cluster)"))
    p.set_defaults(func=cmd_nodes)


__all__ = ["HiveMindError", "register"]
