"""The worker agent: lease subtasks from the node pool, run them in sandboxes,
report the outcomes.

Threads, each with one job:

* **leaser** keeps a local queue filled with leases (several per call). How
  many it holds adapts to how long subtasks take: one per slot for slow ones,
  up to ``max_prefetch`` per slot for very short ones — so fast work never
  waits for a round trip and slow work is not hoarded away from other workers;
* **slot** threads (one per ``--slots``) each own a persistent
  :class:`~hivemind_core.worker.sandbox.Sandbox` and run queued subtasks;
* **completer** sends finished outcomes to the pool in batches;
* **keeper** heartbeats (psutil metrics) and renews every held lease; leases the
  pool says to stop (cancelled, lost) are dropped, running ones killed.

SIGTERM: stop leasing, give back the leases not started, let running subtasks
finish for ``drain_timeout_s``, report them, release whatever is still running,
exit. A second signal gives up at once.
"""

from __future__ import annotations

import logging
import tempfile
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path

from hivemind_core.monitoring.host import system_metrics
from hivemind_core.errors import HiveMindError
from hivemind_core.proto import nodepool_pb2 as pb
from hivemind_core.worker.identity_file import IdentityFile, IdentityInUse
from hivemind_core.worker.link import LinkClosed, NodeIdentity, NodeReset, PoolLink
from hivemind_core.worker.sandbox import Sandbox, SandboxJob, SandboxResult

log = logging.getLogger(__name__)

LEASE_WAIT_S = 2.0          # long poll when the queue is empty
PREFETCH_TARGET_S = 0.05    # hold about this much work per slot beyond the running subtask
COMPLETE_BATCH = 512


@dataclass
class WorkerConfig:
    pool: str
    token: str                      # the cluster token (to register)
    slots: int = 1
    name: str = ""
    labels: dict[str, str] = field(default_factory=dict)
    memory_mb: int = 2048           # memory limit of a subtask that asks for none
    max_prefetch: int = 64          # leases held per slot, at most
    work_dir: Path | None = None    # sandboxes' scratch dirs and fetched inputs
    drain_timeout_s: float = 30.0
    identity_file: Path | None = None   # node credentials kept across restarts (None: a new node each start)
    rpc_timeout_s: float = 10.0
    max_backoff_s: float = 30.0


@dataclass
class Held:
    """A lease this worker holds, from lease until the pool acknowledged its outcome."""

    lease: pb.Lease
    started_at: float = 0.0
    sandbox: Sandbox | None = None
    stop: bool = False              # the pool said stop (cancelled / no longer ours)
    reported: bool = False          # outcome handed to the completer; no renewal needed


class WorkerAgent:
    def __init__(self, config: WorkerConfig) -> None:
        self.config = config
        self.stopping = threading.Event()   # no new work; drain
        self.closed = threading.Event()     # give up on the pool
        self.identity_file = (IdentityFile(config.identity_file, config.token)
                              if config.identity_file is not None else None)
        self.link = PoolLink(config.pool, config.token,
                             NodeIdentity(config.name, config.slots, config.labels), self.closed,
                             config.rpc_timeout_s, config.max_backoff_s, self.identity_file)
        self.link.on_reset = self._forget_all
        self._tmp = None
        if config.work_dir is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="hivemind-worker-")
            work_dir = Path(self._tmp.name)
        else:
            work_dir = Path(config.work_dir)
        self.work_dir = work_dir
        self.sandboxes = [Sandbox(work_dir / f"slot-{i}", name=f"slot-{i}") for i in range(config.slots)]
        self._cv = threading.Condition()
        self._queue: deque[Held] = deque()
        self._held: dict[str, Held] = {}
        self._started: list[pb.Started] = []
        self._done: list[pb.Outcome] = []
        self._avg_run_s: float | None = None
        self._running = 0
        self._slots_alive = config.slots
        self.completed = 0  # outcomes the pool accepted (for logs and tests)

    # ------------------------------------------------------------ lifecycle

    def run(self) -> int:
        """Register, work until :meth:`stop`, drain, exit code."""
        if self.identity_file is None:
            return self._run()
        try:
            if not self.identity_file.acquire(give_up=self.stopping):
                return 0
        except IdentityInUse as exc:
            log.error("%s", exc)
            return 2
        try:
            self.link.load_identity()
            return self._run()
        finally:
            self.identity_file.release()

    def _run(self) -> int:
        try:
            self.link.register()
        except LinkClosed:
            return 0
        threads = [threading.Thread(target=self._guard(self._lease_loop), name="leaser", daemon=True),
                   threading.Thread(target=self._guard(self._keeper_loop), name="keeper", daemon=True)]
        slots = [threading.Thread(target=self._guard(self._slot_loop), args=(sb,), name=sb.name, daemon=True)
                 for sb in self.sandboxes]
        completer = threading.Thread(target=self._guard(self._complete_loop), name="completer", daemon=True)
        for t in (*threads, *slots, completer):
            t.start()
        self.stopping.wait()
        log.info("worker stopping: releasing queued leases, draining running subtasks")
        self._release(self._take_queued(), started=False)
        drain = 0.0 if self.closed.is_set() else self.config.drain_timeout_s
        deadline = time.monotonic() + drain
        for t in slots:
            t.join(max(0.0, deadline - time.monotonic()))
        if any(t.is_alive() for t in slots):
            log.warning("subtasks still running after %.0f s; releasing them", self.config.drain_timeout_s)
            with self._cv:
                running = [h for h in self._held.values() if h.sandbox is not None and h.started_at]
                for h in running:
                    h.stop = True
            for sb in self.sandboxes:
                sb.kill()
            self._release(running, started=True)
        with self._cv:
            self._cv.notify_all()
        completer.join(max(1.0, deadline - time.monotonic() + 5))
        self.closed.set()
        for sb in self.sandboxes:
            sb.close()
        self.link.close()
        if self._tmp is not None:
            self._tmp.cleanup()
        log.info("worker stopped (%d subtasks completed)", self.completed)
        return 0

    def stop(self) -> None:
        """First call: drain and exit. Second call: give up at once. Signal-safe."""
        if self.stopping.is_set():
            self.closed.set()
        self.stopping.set()

    def _guard(self, loop):  # noqa: ANN001, ANN202 - thread body wrapper
        def body(*args: object) -> None:
            try:
                loop(*args)
            except LinkClosed:
                pass
            except Exception:  # noqa: BLE001 - a dying thread must not leave the worker half-alive
                if self.closed.is_set():  # e.g. a long poll cut short by the shutdown
                    return
                log.exception("worker thread %s failed; stopping the worker", threading.current_thread().name)
                self.stop()
        return body

    # ------------------------------------------------------------ leasing

    def _capacity(self) -> int:
        per_slot = 1
        if self._avg_run_s is not None:
            per_slot = 1 + int(PREFETCH_TARGET_S / max(self._avg_run_s, 1e-5))
        return self.config.slots * max(1, min(per_slot, self.config.max_prefetch))

    def _lease_loop(self) -> None:
        while not self.stopping.is_set():
            with self._cv:
                capacity = self._capacity()
                want = capacity - len(self._held)
                if want < max(1, capacity // 2):
                    self._cv.wait(0.5)
                    continue
            try:
                reply = self.link.call(self.link.client.worker_stub.Lease,
                                       pb.LeaseRequest(max=want, wait_s=LEASE_WAIT_S),
                                       timeout=LEASE_WAIT_S + self.config.rpc_timeout_s)
            except NodeReset:
                continue
            if not reply.leases:
                continue
            with self._cv:
                for lease in reply.leases:
                    held = Held(lease)
                    self._held[lease.lease_id] = held
                    self._queue.append(held)
                self._cv.notify_all()
            if self.stopping.is_set():  # leased during shutdown: give them straight back
                self._release(self._take_queued(), started=False)

    def _take_queued(self) -> list[Held]:
        with self._cv:
            queued = list(self._queue)
            self._queue.clear()
            for h in queued:
                self._held.pop(h.lease.lease_id, None)
            self._cv.notify_all()
            return queued

    def _release(self, held: list[Held], started: bool) -> None:
        if not held:
            return
        try:
            self.link.call(self.link.client.worker_stub.Release, pb.ReleaseRequest(releases=[
                pb.Release(lease_id=h.lease.lease_id, started=started) for h in held]))
            log.info("released %d leases", len(held))
        except (LinkClosed, NodeReset, HiveMindError) as exc:
            log.warning("could not release %d leases (%s); they will expire", len(held), exc)
        with self._cv:
            for h in held:
                self._held.pop(h.lease.lease_id, None)

    def _forget_all(self) -> None:
        """The pool forgot us: every lease we hold is void."""
        with self._cv:
            for h in self._held.values():
                h.stop = True
                if h.sandbox is not None:
                    h.sandbox.cancel()
            self._queue.clear()
            self._held.clear()
            self._done.clear()
            self._cv.notify_all()

    # ------------------------------------------------------------ running

    def _next(self) -> Held | None:
        with self._cv:
            while not self._queue:
                if self.stopping.is_set():
                    return None
                self._cv.wait(0.5)
            return self._queue.popleft()

    def _slot_loop(self, sandbox: Sandbox) -> None:
        try:
            self._run_slot(sandbox)
        finally:
            with self._cv:
                self._slots_alive -= 1
                self._cv.notify_all()

    def _run_slot(self, sandbox: Sandbox) -> None:
        while (held := self._next()) is not None:
            if held.stop:
                continue
            lease = held.lease
            with self._cv:
                held.sandbox, held.started_at = sandbox, time.time()
                self._started.append(pb.Started(lease_id=lease.lease_id, started_at=held.started_at))
                self._running += 1
            try:
                outcome = self._execute(sandbox, held)
            finally:
                with self._cv:
                    self._running -= 1
                    held.sandbox = None  # the sandbox moves on; a late stop must not kill the next subtask
            with self._cv:
                if held.stop or outcome is None:
                    self._held.pop(lease.lease_id, None)
                    self._cv.notify_all()
                    continue
                held.reported = True
                self._done.append(outcome)
                self._cv.notify_all()

    def _execute(self, sandbox: Sandbox, held: Held) -> pb.Outcome | None:
        lease = held.lease
        t0 = time.monotonic()
        input_path = None
        try:
            if lease.input_blob:
                input_path = self.link.get_blob(lease.input_blob, sandbox.inbox / lease.input_blob)
        except HiveMindError as exc:
            return pb.Outcome(lease_id=lease.lease_id, ok=False, retryable=True, started_at=held.started_at,
                              finished_at=time.time(), error=f"could not fetch input blob {lease.input_blob}: {exc}")
        job = SandboxJob(subtask_id=lease.subtask_id, task_id=lease.task_id, operation=lease.operation,
                         params=lease.params, input_path=input_path, timeout_s=lease.timeout_s or 600.0,
                         memory_mb=int(lease.memory_mb or self.config.memory_mb))
        fresh = sandbox.pid is None
        result: SandboxResult = sandbox.run(job)
        try:
            if result.status == "cancelled" or held.stop:
                log.info("subtask %s stopped (cancelled or no longer ours)", lease.subtask_id)
                return None
            outcome = pb.Outcome(lease_id=lease.lease_id, ok=result.ok, started_at=held.started_at,
                                 finished_at=time.time())
            if result.ok and result.path is not None:
                outcome.result_blob = self.link.put_blob(result.path)
            elif result.ok:
                outcome.result = result.data or b""
            else:
                outcome.error, outcome.retryable = result.message, result.retryable
                log.info("subtask %s %s: %s", lease.subtask_id, result.status, result.message.strip().splitlines()[-1])
            return outcome
        finally:
            sandbox.clean()
            if input_path is not None:
                input_path.unlink(missing_ok=True)
            if not fresh:  # a sandbox's first subtask includes starting Python: not typical
                took = time.monotonic() - t0
                self._avg_run_s = took if self._avg_run_s is None else 0.8 * self._avg_run_s + 0.2 * took

    # ------------------------------------------------------------ reporting

    def _complete_loop(self) -> None:
        while True:
            with self._cv:
                while not self._done:
                    if self.stopping.is_set() and self._slots_alive == 0:
                        return
                    self._cv.wait(0.5)
                batch, self._done = self._done[:COMPLETE_BATCH], self._done[COMPLETE_BATCH:]
            try:
                reply = self.link.call(self.link.client.worker_stub.Complete, pb.CompleteRequest(outcomes=batch))
                self.completed += reply.accepted
            except NodeReset:
                pass
            with self._cv:
                for o in batch:
                    self._held.pop(o.lease_id, None)
                self._cv.notify_all()

    def _keeper_loop(self) -> None:
        last_beat = 0.0
        while not self.closed.is_set():
            interval = min(self.link.heartbeat_interval_s, self.link.lease_ttl_s / 3)
            if self.closed.wait(max(0.05, interval)):
                return
            try:
                if time.monotonic() - last_beat >= self.link.heartbeat_interval_s * 0.9:
                    self._heartbeat()
                    last_beat = time.monotonic()
                self._renew()
            except NodeReset:
                continue

    def _heartbeat(self) -> None:
        m = system_metrics()
        with self._cv:
            running = self._running
        self.link.call(self.link.client.nodes_stub.Heartbeat, pb.HeartbeatRequest(metrics=pb.Metrics(
            timestamp=m["timestamp"], cpu_percent=m["cpu_percent"], memory_percent=m["memory_percent"],
            disk_percent=m["disk_percent"], net_in_bps=m["net_in_bps"], net_out_bps=m["net_out_bps"],
            running=running)))

    def _renew(self) -> None:
        with self._cv:
            ids = [lid for lid, h in self._held.items() if not (h.stop or h.reported)]
            # starts of subtasks already finished need no report: their outcome carries started_at
            started = [s for s in self._started if s.lease_id in self._held]
            self._started = []
        if not ids and not started:
            return
        reply = self.link.call(self.link.client.worker_stub.Renew,
                               pb.RenewRequest(lease_ids=ids, started=started))
        if reply.stop_lease_ids:
            with self._cv:
                for lid in reply.stop_lease_ids:
                    held = self._held.get(lid)
                    if held is None:
                        continue
                    held.stop = True
                    if held.sandbox is not None and held.started_at:
                        held.sandbox.cancel()
                    if held in self._queue:
                        self._queue.remove(held)
                        self._held.pop(lid, None)
                self._cv.notify_all()
            log.info("pool asked to stop %d subtasks (cancelled or no longer ours)", len(reply.stop_lease_ids))
