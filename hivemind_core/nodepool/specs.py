"""What a subtask asks for — shared by the client (which sends it) and the store (which queues it)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class SubtaskSpec:
    subtask_id: str            # unique; submitting the same id twice = one subtask
    task_id: str
    operation: str             # name in hivemind_core.worker.operations registry
    params: bytes = b""        # opaque, JSON by convention
    input_blob: str = ""       # sha256 of an input blob already put; "" = none
    priority: int = 5          # 0-9, higher first, FIFO within a priority
    max_attempts: int = 3
    cores: float = 1.0         # resource needs
    memory_mb: int = 0
    timeout_s: float = 600.0   # time limit in the worker's sandbox
