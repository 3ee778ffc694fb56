"""TaskService — THE task manager used by the UI, the REST API and the CLI.

Submit: validate the spec against the data (nothing stored on any problem),
split the data into shard files, put them into the node pool as blobs, record
the task and its subtasks, then queue the subtasks (idempotently: the same
subtask ids, so a resubmit never duplicates). Sync: pull subtask states from
the node pool, derive the task's status and progress, resubmit subtasks the
pool does not know (master died mid-submit), and when every shard is done
fetch the partial results and combine them into the result file. All state is
in SQLite, so a restarted master picks up where it stopped.

Every read-modify-write runs in ``write_session`` (``BEGIN IMMEDIATE``): the web
app's syncer and a CLI ``--wait`` may sync the same task at the same time.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import socket
import threading
import time
import uuid
from concurrent.futures import Executor, ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
from sqlalchemy import func
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from hivemind_core.client import NodePoolClient, NodePoolError, NodePoolUnavailable, SubtaskSpec, SubtaskState
from hivemind_core.config import Settings
from hivemind_core.errors import HiveMindError, NotFoundError, PermissionDeniedError, ValidationError
from hivemind_core.jobs.inputs import open_job_input
from hivemind_core.jobs.names import clean_name
from hivemind_core.jobs.plan import JobPlan, combine_results, make_plan
from hivemind_core.jobs.results import RESULT_EXTENSIONS, read_result
from hivemind_core.jobs.spec import JobSpec, parse_spec, validate_against_schema
from hivemind_core.jobs.splitter import split_task
from hivemind_core.principal import Principal
from hivemind_core.sqlite import read_session, write_session
from hivemind_core.tasks import states
from hivemind_core.tasks.models import Subtask, Task, as_utc, utcnow

log = logging.getLogger(__name__)

COMBINE_CLAIM_TTL_S = 900.0   # a combine claimed longer ago than this is taken over (its process died)


def pool_task_id(task_id: str, round_: int) -> str:
    """The node-pool task a round of subtasks is queued under (retries get a fresh one)."""
    return task_id if round_ == 0 else f"{task_id}.r{round_}"


def _from_unix(ts: float | None) -> datetime | None:
    return datetime.fromtimestamp(ts, UTC) if ts else None


class TaskService:
    def __init__(self, engine: Engine, client: NodePoolClient | None, settings: Settings) -> None:
        """``client`` None: a read-only service (list/get/results) for when no node pool is running."""
        self.engine, self._pool, self.settings = engine, client, settings
        self._claim_id = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"

    @property
    def has_pool(self) -> bool:
        return self._pool is not None

    @property
    def client(self) -> NodePoolClient:
        if self._pool is None:
            raise NodePoolUnavailable("no node pool is running for this data dir; start the app, "
                                      "or pass --pool HOST:PORT / set HIVEMIND_NODE_POOL")
        return self._pool

    # ------------------------------------------------------------------ submit

    def submit(self, who: Principal, spec: dict | str | bytes | JobSpec, data_path: Path | None,
               input_name: str = "") -> Task:
        """Validate, split, store shards, record and queue. Bad input raises before anything is stored.

        ``data_path`` is None for a simulation (it reads no data) and a dataset for every other type."""
        if not who.can_submit:
            raise PermissionDeniedError(f"{who.username} is a viewer and cannot submit jobs; "
                                        "ask an administrator for the analyst role.")
        job = parse_spec(spec)
        input_name = clean_name(input_name)   # an uploaded file's name is shown like the job name
        data_path = Path(data_path) if data_path is not None else None
        source = open_job_input(job, data_path, input_name)
        task_id = uuid.uuid4().hex[:16]
        staging = self.settings.data_dir / "staging" / task_id
        try:
            split = split_task(job, source, staging, self._slots())
            if source is not None:
                validate_against_schema(job, split.type_names())   # types may have widened further down
            plan = make_plan(job, split)
            # one blob per shard file, however many subtasks read it (ml: every unit reads the one dataset)
            blobs = {shard.index: (self.client.put_blob(shard.path), shard.nbytes) for shard in split.shards}
            task = Task(
                id=task_id, owner=who.username, name=job.name or clean_name(Path(input_name).stem) or job.type,
                type=job.type, spec=json.dumps(job.to_dict()), priority=job.priority, input_name=input_name,
                input_size=data_path.stat().st_size if data_path else 0,
                input_rows=split.total_rows if source is not None else None,
                result_format=job.output_format, subtasks_total=len(split.units), plan=plan.to_json(),
            )
            subtasks = [
                Subtask(task_id=task_id, pool_id=f"{task_id}.{unit.index:05d}", pool_task=task_id,
                        shard=unit.index, input_blob=blobs[unit.shard][0] if unit.shard is not None else "",
                        rows=unit.rows, bytes=blobs[unit.shard][1] if unit.shard is not None else 0)
                for unit in split.units
            ]
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        with write_session(self.engine) as s:
            s.add(task)
            s.flush()
            s.add_all(subtasks)
            s.commit()
        try:
            self.client.submit([self._subtask_spec(task, plan, job, sub) for sub in subtasks])
        except NodePoolError:
            # The pool refused (e.g. no node could ever meet the needs): nothing is queued; forget the task.
            self._delete_rows(task_id)
            raise
        except NodePoolUnavailable:
            log.warning("task %s recorded; the node pool is unreachable, the syncer will queue it", task_id)
        log.info("task %s submitted by %s: %d shards, %d rows, plan %s",
                 task_id, who.username, len(subtasks), split.total_rows, plan.kind)
        return task

    def _slots(self) -> int:
        try:
            return sum(n.slots for n in self.client.nodes() if n.status != "offline") or self.settings.workers or 1
        except HiveMindError:
            return self.settings.workers or 1

    @staticmethod
    def _subtask_spec(task: Task, plan: JobPlan, job: JobSpec, sub: Subtask) -> SubtaskSpec:
        return SubtaskSpec(
            subtask_id=sub.pool_id, task_id=sub.pool_task, operation=plan.operation,
            params=plan.params_for(sub.shard),
            input_blob=sub.input_blob, priority=task.priority, max_attempts=job.max_attempts,
            memory_mb=job.memory_mb, timeout_s=job.timeout_s,
        )

    # ------------------------------------------------------------------ read

    def _visible(self, s: Session, who: Principal, task_id: str) -> Task:
        task = s.get(Task, task_id)
        if task is None or not who.can_see(task.owner):
            raise NotFoundError(f"no task {task_id!r}" + ("" if who.is_admin else " among your tasks"))
        return task

    def list(self, who: Principal, status: str | None = None, offset: int = 0,
             limit: int = 50) -> tuple[list[Task], int]:
        """Newest first; (page, total count)."""
        if status is not None and status not in states.STATUSES:
            raise ValidationError(f"status: unknown status {status!r}; use one of {', '.join(states.STATUSES)}",
                                  field="status")
        conditions = []
        if not who.is_admin:
            conditions.append(Task.owner == who.username)
        if status:
            conditions.append(Task.status == status)
        with read_session(self.engine) as s:
            total = s.exec(select(func.count()).select_from(Task).where(*conditions)).one()
            page = s.exec(select(Task).where(*conditions).order_by(col(Task.created_at).desc(), col(Task.id))
                          .offset(max(0, offset)).limit(max(0, limit))).all()
        return list(page), int(total)

    def get(self, who: Principal, task_id: str) -> Task:
        with read_session(self.engine) as s:
            return self._visible(s, who, task_id)

    def subtasks(self, who: Principal, task_id: str) -> list[Subtask]:
        with read_session(self.engine) as s:
            self._visible(s, who, task_id)
            return list(s.exec(select(Subtask).where(Subtask.task_id == task_id).order_by(col(Subtask.shard))))

    def result_path(self, who: Principal, task_id: str) -> Path:
        task = self.get(who, task_id)
        path = Path(task.result_path) if task.result_path else None
        if task.status == states.FAILED:
            raise NotFoundError(f"task {task_id} failed, so it has no result: {task.error or 'no reason recorded'}")
        if task.status == states.CANCELLED:
            raise NotFoundError(f"task {task_id} was cancelled, so it has no result")
        if task.status != states.COMPLETED:
            raise NotFoundError(f"task {task_id} has no result yet (status: {task.status}, "
                                f"{task.progress:.0f}% done)")
        if path is None or not path.is_file():
            raise NotFoundError(f"the result file of task {task_id} is missing ({path}); run the job again")
        return path

    def preview_result(self, who: Principal, task_id: str, n: int = 20) -> pd.DataFrame:
        task = self.get(who, task_id)
        return read_result(self.result_path(who, task_id), task.result_format, n)

    def counts_by_status(self, who: Principal) -> dict[str, int]:
        """The tasks ``who`` can see (their own; admins all), counted by status."""
        return self._counts_by_status(None if who.is_admin else who.username)

    def system_counts_by_status(self) -> dict[str, int]:
        """Every user's tasks counted by status: numbers only, so any logged-in role may see them."""
        return self._counts_by_status(None)

    def finished_per_hour(self, who: Principal, hours: int = 24) -> list[tuple[datetime, int]]:
        """Tasks ``who`` can see that reached a final state, per hour (UTC), oldest first, zeros included."""
        return self._finished_per_hour(None if who.is_admin else who.username, hours)

    def system_finished_per_hour(self, hours: int = 24) -> list[tuple[datetime, int]]:
        """Every user's tasks that reached a final state, per hour (UTC): numbers only, as above."""
        return self._finished_per_hour(None, hours)

    def _counts_by_status(self, owner: str | None) -> dict[str, int]:
        query = select(Task.status, func.count()).group_by(Task.status)
        if owner is not None:
            query = query.where(Task.owner == owner)
        with read_session(self.engine) as s:
            found = dict(s.exec(query).all())
        return {st: int(found.get(st, 0)) for st in states.STATUSES}

    def _finished_per_hour(self, owner: str | None, hours: int) -> list[tuple[datetime, int]]:
        this_hour = utcnow().replace(minute=0, second=0, microsecond=0)
        since = this_hour - timedelta(hours=hours - 1)
        query = select(Task.finished_at).where(col(Task.finished_at) >= since)
        if owner is not None:
            query = query.where(Task.owner == owner)
        with read_session(self.engine) as s:
            stamps = s.exec(query).all()
        buckets = {since + timedelta(hours=i): 0 for i in range(hours)}
        for ts in stamps:
            key = ts.replace(minute=0, second=0, microsecond=0)
            if key in buckets:
                buckets[key] += 1
        return sorted(buckets.items())

    # ------------------------------------------------------------------ control

    def cancel(self, who: Principal, task_id: str) -> Task:
        """Stop a task: its subtasks are cancelled in the pool and never run again."""
        with write_session(self.engine) as s:
            task = self._visible(s, who, task_id)
            if task.status == states.COMPLETED:
                raise ValidationError(f"task {task_id} has already completed; delete it instead", field="status")
            if task.status != states.CANCELLED:
                now = utcnow()
                task.status, task.finished_at, task.updated_at = states.CANCELLED, now, now
                task.error = task.error or f"cancelled by {who.username}"
                task.cancel_pending = True
                for sub in s.exec(select(Subtask).where(Subtask.task_id == task_id)):
                    if sub.status in states.ACTIVE:
                        sub.status, sub.finished_at = states.CANCELLED, now
                        s.add(sub)
                s.add(task)
                s.commit()
        self._tell_pool_cancelled(task)
        return self.get(who, task_id)

    def _tell_pool_cancelled(self, task: Task) -> None:
        try:
            self.client.cancel(pool_task_id(task.id, task.round))
        except NodePoolUnavailable:
            log.warning("task %s cancelled here; the node pool is unreachable, will tell it later", task.id)
            return
        with write_session(self.engine) as s:
            fresh = s.get(Task, task.id)
            if fresh is not None and fresh.round == task.round:
                fresh.cancel_pending = False
                s.add(fresh)
                s.commit()

    def retry(self, who: Principal, task_id: str) -> Task:
        """Run the failed or cancelled shards of a task again (completed shards are kept)."""
        if not who.can_submit:
            raise PermissionDeniedError(f"{who.username} is a viewer and cannot run jobs.")
        with write_session(self.engine) as s:
            task = self._visible(s, who, task_id)
            if task.status not in (states.FAILED, states.CANCELLED):
                raise ValidationError(f"only failed or cancelled tasks can be retried; task {task_id} is "
                                      f"{task.status}", field="status")
            task.round += 1
            pool_task = pool_task_id(task.id, task.round)
            subs = list(s.exec(select(Subtask).where(Subtask.task_id == task_id)))
            rerun = [sub for sub in subs if sub.status != states.COMPLETED]
            for sub in rerun:
                sub.pool_id, sub.pool_task = f"{task.id}.{sub.shard:05d}.r{task.round}", pool_task
                sub.status, sub.attempts, sub.error, sub.result_blob = states.PENDING, 0, "", ""
                sub.node_id = sub.node_name = ""
                sub.started_at = sub.finished_at = None
                s.add(sub)
            task.status = states.overall_status(sub.status for sub in subs)
            # run time is the latest run's: it starts when a rerun shard starts (see _derive)
            task.error, task.started_at, task.finished_at, task.updated_at = "", None, None, utcnow()
            task.cancel_pending, task.combine_claim, task.combine_claimed_at = False, None, None
            s.add(task)
            s.commit()
        job, plan = parse_spec(task.spec), JobPlan.from_json(task.plan)
        try:
            self.client.submit([self._subtask_spec(task, plan, job, sub) for sub in rerun])
        except NodePoolUnavailable:
            log.warning("task %s retry recorded; the syncer will queue it when the pool is back", task_id)
        return self.get(who, task_id)

    def delete(self, who: Principal, task_id: str) -> None:
        """Delete a task, its subtasks, its blobs in the node pool and its result file."""
        task = self.get(who, task_id)
        if task.status in states.ACTIVE:
            self.client.cancel(pool_task_id(task.id, task.round))
        for round_ in range(task.round + 1):
            self.client.delete_task(pool_task_id(task.id, round_))
        if task.result_path:
            Path(task.result_path).unlink(missing_ok=True)
        self._delete_rows(task_id)
        log.info("task %s deleted by %s", task_id, who.username)

    def _delete_rows(self, task_id: str) -> None:
        with write_session(self.engine) as s:
            for sub in s.exec(select(Subtask).where(Subtask.task_id == task_id)):
                s.delete(sub)
            task = s.get(Task, task_id)
            if task is not None:
                s.delete(task)
            s.commit()

    # ------------------------------------------------------------------ sync

    def sync(self, combiner: Executor | None = None) -> None:
        """One pass over unfinished tasks: pull progress, requeue what the pool lacks, combine finished ones
        (in ``combiner``'s threads if given, so a long combine does not hold up the other tasks' status)."""
        self.push_pending_cancels()
        with read_session(self.engine) as s:
            active = s.exec(select(Task.id).where(col(Task.status).in_(states.ACTIVE))).all()
        for task_id in active:
            try:
                self.sync_task(task_id, combiner)
            except NodePoolUnavailable:
                log.warning("node pool unreachable; task sync paused")
                return
            except Exception:  # noqa: BLE001 - one broken task must not stop the others' progress
                log.exception("syncing task %s failed", task_id)

    def push_pending_cancels(self) -> int:
        """Tell the pool about cancellations recorded while it could not be reached; how many remain.

        Called by every sync, and by ``tasks.connect`` right after a pool starts and before its
        workers do, so a subtask cancelled while no pool ran is never leased."""
        with read_session(self.engine) as s:
            pending = s.exec(select(Task).where(Task.cancel_pending == True)).all()
        for task in pending:
            self._tell_pool_cancelled(task)
        with read_session(self.engine) as s:
            return int(s.exec(select(func.count()).select_from(Task).where(Task.cancel_pending == True)).one())

    def sync_task(self, task_id: str, combiner: Executor | None = None) -> Task | None:
        """Bring one task up to date with the node pool; returns it (None if deleted).

        When every shard is done this process claims the combine and runs it here, or queues it
        on ``combiner`` (the task stays running until the result file exists)."""
        with read_session(self.engine) as s:
            task = s.get(Task, task_id)
        if task is None or task.status not in states.ACTIVE:
            return task
        pool_states = {st.subtask_id: st for st in self.client.status(pool_task_id(task.id, task.round))}
        missing: list[Subtask] = []
        claim = False
        with write_session(self.engine) as s:
            task = s.get(Task, task_id)
            if task is None or task.status not in states.ACTIVE:
                return task
            subs = list(s.exec(select(Subtask).where(Subtask.task_id == task_id).order_by(col(Subtask.shard))))
            for sub in subs:
                st = pool_states.get(sub.pool_id)
                if st is None:
                    if sub.status != states.COMPLETED:
                        missing.append(sub)
                    continue
                _copy_state(sub, st)
                s.add(sub)
            self._derive(task, subs)
            if task.status == states.COMPLETED:
                # hold at running until the result file exists; one process combines
                task.status = states.RUNNING
                stale = (task.combine_claimed_at or 0) < time.time() - COMBINE_CLAIM_TTL_S
                if task.combine_claim is None or stale:
                    task.combine_claim, task.combine_claimed_at = self._claim_id, time.time()
                    claim = True
            s.add(task)
            s.commit()
        if missing and task.status in states.ACTIVE:
            job, plan = parse_spec(task.spec), JobPlan.from_json(task.plan)
            log.info("task %s: queueing %d subtasks the node pool does not have", task_id, len(missing))
            self.client.submit([self._subtask_spec(task, plan, job, sub) for sub in missing])
        if task.status == states.FAILED:
            self.client.cancel(pool_task_id(task.id, task.round))   # free the workers from the other shards
        if claim and combiner is not None:
            combiner.submit(self._combine_logged, task, subs)
        elif claim:
            self._combine(task, subs)
        with read_session(self.engine) as s:
            return s.get(Task, task_id)

    def _combine_logged(self, task: Task, subs: list[Subtask]) -> None:
        """:meth:`_combine` in a background thread: nobody waits for it, so errors go to the log
        (the claim is released on a pool outage, so a later sync combines again)."""
        try:
            self._combine(task, subs)
        except NodePoolUnavailable:
            log.warning("task %s: the node pool is unreachable; its results will be combined later", task.id)
        except Exception:  # noqa: BLE001 - a background thread: log, the claim expires and is taken over
            log.exception("combining the results of task %s failed", task.id)

    def close_leftover_subtasks(self) -> int:
        """Close the unfinished subtasks of failed or cancelled tasks (left so by a master that did
        not yet close them when the task ended); returns how many. The syncer runs it at start."""
        with write_session(self.engine) as s:
            ended = s.exec(select(Task).where(
                col(Task.status).in_((states.FAILED, states.CANCELLED)),
                col(Task.id).in_(select(Subtask.task_id).where(col(Subtask.status).in_(states.ACTIVE))))).all()
            closed = 0
            for task in ended:
                subs = list(s.exec(select(Subtask).where(Subtask.task_id == task.id)))
                closed += sum(sub.status in states.ACTIVE for sub in subs)
                now = task.finished_at or utcnow()
                bad = next((sub for sub in subs if sub.status == states.FAILED), None)
                if task.status == states.FAILED and bad is not None:
                    _close_leftovers(subs, bad.shard, now)
                else:
                    for sub in subs:
                        if sub.status in states.ACTIVE:
                            sub.status, sub.finished_at = states.CANCELLED, sub.finished_at or now
                s.add_all(subs)
            s.commit()
        if closed:
            log.info("closed %d unfinished subtasks of %d failed or cancelled tasks", closed, len(ended))
        return closed

    @staticmethod
    def _derive(task: Task, subs: list[Subtask]) -> None:
        now = utcnow()
        status = states.overall_status(sub.status for sub in subs)
        task.progress = states.progress(sub.status for sub in subs)
        task.subtasks_done = sum(sub.status == states.COMPLETED for sub in subs)
        task.updated_at = now
        # the latest run: after a retry, shards kept from an earlier round do not count. The
        # earliest start seen so far stays: a shard reported later may have started earlier,
        # and one that starts again (lease expired) does not move the run's start.
        current = [sub for sub in subs if task.round == 0 or sub.pool_task == pool_task_id(task.id, task.round)]
        starts = [as_utc(sub.started_at) for sub in current if sub.started_at]
        if task.started_at is not None:
            starts.append(as_utc(task.started_at))
        if starts:
            task.started_at = min(starts)
        elif any(sub.status in (states.RUNNING, states.COMPLETED, states.FAILED) for sub in current):
            task.started_at = now
        if status == states.FAILED:
            bad = next(sub for sub in subs if sub.status == states.FAILED)
            task.error = f"shard {bad.shard} failed after {bad.attempts} attempt(s): {bad.error}".strip()
            task.finished_at = now
            _close_leftovers(subs, bad.shard, now)
        task.status = status

    def _combine(self, task: Task, subs: list[Subtask]) -> None:
        """Fetch every shard's result and write the task's result file (then mark it completed)."""
        work = self.settings.data_dir / "staging" / f"{task.id}-combine-{uuid.uuid4().hex[:6]}"
        work.mkdir(parents=True, exist_ok=True)
        ext = RESULT_EXTENSIONS[task.result_format]
        out = self.settings.results_dir / f"{task.id}{ext}"
        try:
            parts = [self.client.get_blob(sub.result_blob, work / f"part-{sub.shard:05d}.arrow")
                     for sub in sorted(subs, key=lambda x: x.shard)]
            rows = combine_results(parse_spec(task.spec), JobPlan.from_json(task.plan), parts, out)
        except NodePoolUnavailable:
            self._release_claim(task.id)
            raise
        except Exception as exc:  # noqa: BLE001 - the task fails with the reason; the master goes on
            log.exception("combining the results of task %s failed", task.id)
            self._finish(task.id, states.FAILED, error=f"combining the shard results failed: {exc}")
            return
        finally:
            shutil.rmtree(work, ignore_errors=True)
        self._finish(task.id, states.COMPLETED, result_path=str(out), result_rows=rows)
        log.info("task %s completed: %d result rows in %s", task.id, rows, out)

    def _release_claim(self, task_id: str) -> None:
        with write_session(self.engine) as s:
            task = s.get(Task, task_id)
            if task is not None and task.combine_claim == self._claim_id:
                task.combine_claim = task.combine_claimed_at = None
                s.add(task)
                s.commit()

    def _finish(self, task_id: str, status: str, *, error: str = "", result_path: str | None = None,
                result_rows: int | None = None) -> None:
        with write_session(self.engine) as s:
            task = s.get(Task, task_id)
            if task is None or task.status not in states.ACTIVE or task.combine_claim != self._claim_id:
                return  # cancelled or deleted meanwhile, or another process took over
            now = utcnow()
            task.status, task.error, task.finished_at, task.updated_at = status, error, now, now
            if status == states.COMPLETED:
                task.progress, task.result_path, task.result_rows = 100.0, result_path, result_rows
            task.combine_claim = task.combine_claimed_at = None
            s.add(task)
            s.commit()


def _stopped_because(shard: int) -> str:
    return f"cancelled: shard {shard} failed, so the rest of the task was stopped"


def _close_leftovers(subs: list[Subtask], failed_shard: int, now: datetime) -> None:
    """A failed task's other subtasks end too: the unfinished ones (and those the node pool
    cancelled when the shard failed) are cancelled, saying which shard failed. A failed task is
    never synced again, so this is their last word."""
    for sub in subs:
        if sub.status in states.ACTIVE or sub.status == states.CANCELLED:
            sub.status, sub.error = states.CANCELLED, _stopped_because(failed_shard)
            sub.finished_at = sub.finished_at or now


def _copy_state(sub: Subtask, st: SubtaskState) -> None:
    sub.status, sub.attempts, sub.error = st.state, st.attempts, st.error or ""
    sub.node_id, sub.node_name, sub.result_blob = st.node_id, st.node_name, st.result_blob
    sub.started_at, sub.finished_at = _from_unix(st.started_at), _from_unix(st.finished_at)


class TaskSyncer:
    """Calls ``service.sync()`` about every ``interval`` seconds in a daemon thread.

    Combining a finished task's results (fetch every shard's result, write the result file)
    can take many seconds for a big result; it runs in a small pool of its own threads, so the
    status of every other task keeps following its subtasks meanwhile."""

    def __init__(self, service: TaskService, interval: float = 1.0, combine_threads: int = 2) -> None:
        self.service, self.interval, self.combine_threads = service, interval, combine_threads
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._combiner: ThreadPoolExecutor | None = None

    def start(self) -> TaskSyncer:
        if self._thread is None or not self._thread.is_alive():
            self._stop.clear()
            self._combiner = ThreadPoolExecutor(self.combine_threads, thread_name_prefix="hivemind-combine")
            self._thread = threading.Thread(target=self._run, name="hivemind-task-syncer", daemon=True)
            self._thread.start()
        return self

    def _run(self) -> None:
        try:
            self.service.close_leftover_subtasks()
        except Exception:  # noqa: BLE001 - a repair of old rows; syncing matters more
            log.exception("closing leftover subtasks failed")
        while not self._stop.is_set():
            try:
                self.service.sync(self._combiner)
            except Exception:  # noqa: BLE001 - keep syncing; the next pass may succeed
                log.exception("task sync pass failed")
            self._stop.wait(self.interval)

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None
        if self._combiner is not None:
            # combines already queued still run (a claim left by a killed process expires: COMBINE_CLAIM_TTL_S)
            self._combiner.shutdown(wait=False)
            self._combiner = None
