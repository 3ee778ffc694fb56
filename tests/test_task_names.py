"""Job names from the browser tester's report: control characters and 5000-character
names were accepted, the CLI printed escape sequences raw (terminal injection), and
the result downloaded as <task id>.csv. Names are checked once, in parse_spec (so the
UI, the REST API and the CLI all refuse the same names), shown as text everywhere,
and name the downloaded result in a form every desktop OS accepts."""

from __future__ import annotations

import pytest

from hivemind_core import db
from hivemind_core.errors import ValidationError
from hivemind_core.jobs.names import MAX_NAME_LENGTH, clean_name, file_name, printable
from hivemind_core.jobs.spec import parse_spec
from hivemind_core.sqlite import write_session
from hivemind_core.tasks.models import Task
from hivemind_core.tasks.output import download_name
from tests.pool_procs import run_cli

PIPELINE = {"pipeline": {"columns": ["a"]}}


@pytest.mark.parametrize("name,where", [
    ("evil\x1b[2J\x1b[31m", "\\x1b"),
    ("two\nlines", "\\x0a"),
    ("tab\there", "\\x09"),
    ("bell\x07", "\\x07"),
    ("abc\u202edcba", "\\u202e"),      # right-to-left override: shows text in another order
    ("nul\x00", "\\x00"),
])
def test_control_characters_in_the_name_are_refused(name, where):
    with pytest.raises(ValidationError) as err:
        parse_spec({**PIPELINE, "name": name})
    assert err.value.field == "name"
    assert str(err.value).startswith("name: must be plain text on one line") and where in str(err.value)
    assert "\x1b" not in str(err.value) and "\n" not in str(err.value)


def test_name_length_is_limited_and_the_name_stripped():
    with pytest.raises(ValidationError) as err:
        parse_spec({**PIPELINE, "name": "x" * 5000})
    assert err.value.field == "name" and str(err.value) == "name: is 5000 characters long; use at most 200"
    assert parse_spec({**PIPELINE, "name": "y" * MAX_NAME_LENGTH}).name == "y" * MAX_NAME_LENGTH
    assert parse_spec({**PIPELINE, "name": "  delays by carrier \u00e9\u6f22 \U0001F680 "}).name == \
        "delays by carrier \u00e9\u6f22 \U0001F680"
    assert parse_spec({**PIPELINE, "name": "**bold** [link](http://x)"}).name == "**bold** [link](http://x)"


def test_names_made_from_uploaded_file_names_are_cleaned():
    assert clean_name("report\x1b[2J\nQ1") == "report [2J Q1"
    assert clean_name("a" * 300) == "a" * MAX_NAME_LENGTH
    parse_spec({**PIPELINE, "name": clean_name("x\u202e\t" * 150)})   # passes the check


def test_printable_escapes_what_would_drive_a_terminal():
    assert printable("a\x1b[2Jb\rc\x07") == "a\\x1b[2Jb\\x0dc\\x07"
    assert printable("abc\u202edcba") == "abc\\u202edcba"
    assert printable("line 1\nline 2\x1b", keep_newlines=True) == "line 1\nline 2\\x1b"
    assert printable("Zürich 漢字 🚀") == "Zürich 漢字 🚀"


@pytest.mark.parametrize("name,expected", [
    ("delays by carrier", "delays by carrier.csv"),
    ('a/b\\c:d*e?f"g<h>i|j', "a_b_c_d_e_f_g_h_i_j.csv"),
    ("  .hidden. ", "hidden.csv"),
    ("CON", "_CON.csv"),
    ("lpt1.report", "_lpt1.report.csv"),
    ("results.csv", "results.csv"),
    ("Zürich 漢字", "Zürich 漢字.csv"),
    ("///", "abc123.csv"),
    ("", "abc123.csv"),
    ("tab\tand\x1b esc", "tab_and_ esc.csv"),
])
def test_result_file_names_work_on_every_desktop_os(name, expected):
    assert file_name(name, ".csv", "abc123") == expected


def test_long_names_fit_file_system_limits():
    out = file_name("é" * 200, ".parquet", "abc")
    assert out.endswith(".parquet") and len(out.encode()) <= 255 and out.startswith("é")
    out.encode("utf-8")   # no half character


def test_download_name_of_a_task():
    assert download_name(Task(id="t1", owner="a", name="sum by key", result_format="parquet")) == "sum by key.parquet"
    assert download_name(Task(id="t1", owner="a", name="???", result_format="json")) == "t1.json"


def test_cli_list_and_status_print_stored_names_as_text(subprocess_env, tmp_path):
    """Tasks stored before names were checked (or by an older version) still print safely."""
    with write_session(db.get_engine()) as s:
        s.add(Task(id="evil1", owner="admin", name="x\x1b]0;owned\x07\x1b[2J", input_name="in\x1b[1m.csv",
                   error="boom\x1b[31m\nsecond line", input_rows=1, status="failed"))
        s.commit()
    listed = run_cli(["list"], subprocess_env, tmp_path, 60)
    assert listed.returncode == 0, listed.stderr
    assert "\x1b" not in listed.stdout and "\x07" not in listed.stdout
    assert "x\\x1b]0;owned\\x07\\x1b[2J" in listed.stdout
    status = run_cli(["status", "evil1"], subprocess_env, tmp_path, 60)
    assert status.returncode == 0, status.stderr
    assert "\x1b" not in status.stdout and "in\\x1b[1m.csv" in status.stdout
    assert "error     boom\\x1b[31m\nsecond line" in status.stdout
    failed = run_cli(["result", "evil1", "--output", str(tmp_path / "r.csv")], subprocess_env, tmp_path, 60)   # the one error line quotes the error
    assert failed.returncode == 1 and "\x1b" not in failed.stderr and "boom\\x1b[31m" in failed.stderr
