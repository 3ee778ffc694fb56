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
    assert result.message == "script: process(df) must return a pandas DataFrame, got int 3"


def test_duplicate_result_columns_are_one_plain_line(sandbox, shard):
    result = run(sandbox, shard, "def process(df):\n    return df[['carrier', 'delay', 'carrier']]\n")
    assert result.status == "error"
    assert result.message == ("script: process(df) returned a DataFrame with two columns named 'carrier'; "
                              "give each column its own name")


@pytest.mark.parametrize("script", ["import sys\n\ndef process(df):\n    sys.exit(3)\n",
                                    "import sys\nsys.exit(3)\n\ndef process(df):\n    return df\n"])
def test_exit_in_the_script_is_a_plain_error_not_a_crash(sandbox, shard, script):
    result = run(sandbox, shard, script)
    assert result.status == "error", result
    assert result.message.startswith("script: exit(3) called ") and "\n" not in result.message
    assert not any(name in result.message for name in OUR_NAMES)
    assert run(sandbox, shard, "def process(df):\n    return df\n").ok


@pytest.mark.parametrize("returned,described", [("'hello'", "str 'hello'"), ("[1, 2]", "list [1, 2]"),
                                                ("None", "None (nothing)")])
def test_simulation_returning_the_wrong_thing_says_what_and_what_is_expected(sandbox, returned, described):
    from hivemind_core.jobs.operations import SIMULATION_OP
    from hivemind_core.jobs.spec import parse_spec

    spec = parse_spec({"type": "simulation", "trials": 10,
                       "script": f"def simulate(rng, n):\n    return {returned}\n"}).to_dict()
    result = sandbox.run(SandboxJob(subtask_id="s", task_id="t", operation=SIMULATION_OP,
                                    params=json.dumps({"spec": spec, "unit": 0, "units": 1}).encode(),
                                    input_path=None, timeout_s=60, memory_mb=512))
    sandbox.clean()
    assert result.status == "error"
    assert result.message == ("script: simulate(rng, n) must return a dict {name: per-trial numbers} "
                              "(e.g. {\"hit\": rng.random(n) < 0.5}) or a pandas DataFrame, got " + described)


def test_memory_overrun_is_a_plain_message_naming_the_limit(sandbox, shard):
    result = run(sandbox, shard, "def process(df):\n    block = bytearray(4 * 1024**3)\n    return df\n",
                 memory_mb=256)
    assert result.status == "memory"
    assert "memory limit of 256 MB" in result.message and "\n" not in result.message
    assert "Traceback" not in result.message
    assert run(sandbox, shard, "def process(df):\n    return df\n").ok   # the next job runs in a fresh child


@pytest.mark.parametrize("rows,memory_mb", [(200_000, 1), (2_000_000, 16)])   # shard 4.8 MB, 48 MB
def test_too_little_memory_to_load_the_shard_is_the_same_plain_message(sandbox, tmp_path, rows, memory_mb):
    """With a limit too small to even read the shard (pyarrow cannot start its reader thread, or
    cannot map the file) the author sees the memory line, not our traceback from reading it."""
    import numpy as np

    rng = np.random.default_rng(7)
    path = write_ipc(pd.DataFrame({"a": rng.random(rows), "b": rng.random(rows), "c": rng.random(rows)}),
                     tmp_path / "shard.arrow")
    result = run(sandbox, path, "def process(df):\n    return df.head(1)\n", memory_mb=memory_mb)
    assert result.status == "memory", result.message
    assert result.message.startswith(f"the operation exceeded its memory limit of {memory_mb} MB")
    assert "\n" not in result.message and "Traceback" not in result.message
    assert "memory_mb" in result.message
    assert run(sandbox, path, "def process(df):\n    return df.head(1)\n").ok   # enough memory: it runs


def test_time_out_is_a_plain_message(sandbox, shard):
    result = run(sandbox, shard, "import time\n\ndef process(df):\n    time.sleep(60)\n    return df\n",
                 timeout_s=1)
    assert result.status == "timeout"
    assert result.message.startswith("time limit of 1 s exceeded") and "Traceback" not in result.message
