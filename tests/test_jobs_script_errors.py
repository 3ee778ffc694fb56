"""What the author of a script job sees when it goes wrong, from a real worker
sandbox (child process) running the real ``jobs.script`` operation: their own
frames only (no frame of ours), a broken contract as one plain line, and a
memory overrun or a time-out as a plain message — never our traceback."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest

from hivemind_core.jobs.operations import SCRIPT_OP
from hivemind_core.jobs.results import write_ipc
from hivemind_core.worker.sandbox import Sandbox, SandboxJob

pytestmark = pytest.mark.timeout(120)
OUR_NAMES = ("sandbox_child", "operations.py", "script.py", "hivemind_core", "ScriptError", "site-packages")


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sandbox]:
    sb = Sandbox(tmp_path_factory.mktemp("slot"))
    try:
        yield sb
    finally:
        sb.close()


@pytest.fixture(scope="module")
def shard(tmp_path_factory: pytest.TempPathFactory) -> Path:
    frame = pd.DataFrame({"carrier": ["AA", "UA", "DL"], "delay": [5.0, -3.0, 12.0]})
    return write_ipc(frame, tmp_path_factory.mktemp("shard") / "shard.arrow")


def run(sandbox: Sandbox, shard: Path, script: str, memory_mb: int = 512, timeout_s: float = 60):
    result = sandbox.run(SandboxJob(subtask_id="s", task_id="t", operation=SCRIPT_OP,
                                    params=json.dumps({"script": script}).encode(), input_path=shard,
                                    timeout_s=timeout_s, memory_mb=memory_mb))
    sandbox.clean()
    return result


def test_user_exception_shows_only_the_users_frames(sandbox, shard):
    script = ("def ratio(row):\n"
              "    return row['delay'] / 0 if row['carrier'] == 'UA' else 1 // 0\n"
              "\n"
              "def process(df):\n"
              "    df['r'] = df.apply(ratio, axis=1)\n"
              "    return df\n")
    result = run(sandbox, shard, script)
    assert result.status == "error"
    lines = result.message.splitlines()
    assert lines[0] == "Traceback (most recent call last):"
    assert '  File "<script>", line 5, in process' in lines
    assert '  File "<script>", line 2, in ratio' in lines
    assert lines[-1] == "ZeroDivisionError: integer division or modulo by zero"
    assert not [ln for ln in lines if any(name in ln for name in OUR_NAMES)], result.message
    assert [ln for ln in lines if ln.startswith("  File")] == ['  File "<script>", line 5, in process',
                                                              '  File "<script>", line 2, in ratio']


def test_error_while_loading_the_script_shows_its_line(sandbox, shard):
    result = run(sandbox, shard, "import json\nCONFIG = json.loads('{bad')\n\ndef process(df):\n    return df\n")
    assert result.status == "error" and '  File "<script>", line 2, in <module>' in result.message
    assert result.message.splitlines()[-1].startswith("json.decoder.JSONDecodeError: Expecting property name")
    assert not any(name in result.message for name in ("sandbox_child", "hivemind_core", "ScriptError"))


def test_wrong_return_type_is_one_plain_line(sandbox, shard):
    result = run(sandbox, shard, "def process(df):\n    return len(df)\n")
    assert result.status == "error"
    assert result.message == "script: process(df) must return a pandas DataFrame, got int"


def test_memory_overrun_is_a_plain_message_naming_the_limit(sandbox, shard):
    result = run(sandbox, shard, "def process(df):\n    block = bytearray(4 * 1024**3)\n    return df\n",
                 memory_mb=256)
    assert result.status == "memory"
    assert "memory limit of 256 MB" in result.message and "\n" not in result.message
    assert "Traceback" not in result.message
    assert run(sandbox, shard, "def process(df):\n    return df\n").ok   # the next job runs in a fresh child


def test_time_out_is_a_plain_message(sandbox, shard):
    result = run(sandbox, shard, "import time\n\ndef process(df):\n    time.sleep(60)\n    return df\n",
                 timeout_s=1)
    assert result.status == "timeout"
    assert result.message.startswith("time limit of 1 s exceeded") and "Traceback" not in result.message
