"""The REST API against the real app: ``streamlit run app.py`` with its own data
dir and 2 embedded workers; users and tokens are made through the core in the
same database, every request goes over HTTP."""

from __future__ import annotations

import io
import json
import sqlite3
import time
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path

import pandas as pd
import psutil
import pytest
import requests

from hivemind_core import auth
from hivemind_core.principal import Principal
from tests.app_server import running_app, shared_data_dir
from tests.flights import flights_frame
from tests.test_jobs_simulation import assert_same_moments, expected_moments, shard_outputs

pytestmark = pytest.mark.slow
EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
UPLOAD_LIMIT_MB = 8
FLIGHT_ROWS = 40_000
ADMIN, ANN, BOB, VIC = (Principal("root", "admin"), Principal("ann", "analyst"), Principal("bob", "analyst"),
                        Principal("vic", "viewer"))
PW = "long enough 1"
SPEC = {
    "name": "delays by carrier", "type": "data_processing", "priority": 5, "split": {"shards": 4},
    "pipeline": {"filter": [{"column": "distance", "op": ">", "value": 300}],
                 "group_by": ["carrier"],
                 "aggregate": {"arr_delay": ["mean", "count", "std"], "distance": ["sum"]},
                 "sort": [{"column": "carrier"}]},
    "output": {"format": "csv"},
}


@pytest.fixture(scope="module")
def server_env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    with shared_data_dir(tmp_path_factory.mktemp("api") / "data") as data_dir:
        yield data_dir


@pytest.fixture(autouse=True)
def isolated_env(server_env: Path) -> Path:
    """Overrides conftest's per-test data dir: this module's tests share the server's."""
    return server_env


@pytest.fixture(scope="module")
def tokens(server_env: Path) -> dict[str, str]:
    auth.create_first_admin(ADMIN.username, PW)
    for who in (ANN, BOB, VIC):
        auth.create_user(ADMIN, who.username, PW, who.role)
    return {who.username: auth.create_api_token(who, "tests") for who in (ADMIN, ANN, BOB, VIC)}


@pytest.fixture(scope="module")
def base(server_env: Path, tokens: dict[str, str]) -> Iterator[str]:
    with running_app(server_env, workers=2, HIVEMIND_MAX_UPLOAD_MB=str(UPLOAD_LIMIT_MB)) as url:
        yield url


@pytest.fixture(scope="module")
def flights_csv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("flights") / "flights.csv"
    flights_frame().head(FLIGHT_ROWS).to_csv(path, index=False)
    return path


def hdr(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def submit(base: str, token: str, spec: dict | str, path: Path) -> requests.Response:
    with open(path, "rb") as fh:
        return requests.post(f"{base}/api/tasks", headers=hdr(token), timeout=120, files={
            "spec": (None, spec if isinstance(spec, str) else json.dumps(spec)),
            "data": (path.name, fh, "text/csv")})


def wait_final(base: str, token: str, task_id: str, timeout: float = 240) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        body = requests.get(f"{base}/api/tasks/{task_id}", headers=hdr(token), timeout=30).json()
        if body["status"] in ("completed", "failed", "cancelled"):
            return body
        time.sleep(0.5)
    raise AssertionError(f"task {task_id} did not finish in {timeout} s: {body}")


def expected_result(path: Path) -> pd.DataFrame:
    df = pd.read_csv(path)
    df = df[df["distance"] > 300]
    out = df.groupby("carrier").agg(arr_delay_mean=("arr_delay", "mean"), arr_delay_count=("arr_delay", "count"),
                                    arr_delay_std=("arr_delay", "std"), distance_sum=("distance", "sum"))
    return out.reset_index().sort_values("carrier").reset_index(drop=True)


def test_health_is_public_and_healthy(base: str) -> None:
    r = requests.get(f"{base}/health", timeout=30)
    assert r.status_code == 200
    body = r.json()
    assert body["status"] == "healthy" and body["workers"]["online"] + body["workers"]["busy"] == 2


@pytest.mark.parametrize("path", ["/api/tasks", "/api/nodes", "/api/system/status", "/api/tasks/x/result"])
def test_missing_or_unknown_token_is_401(base: str, path: str) -> None:
    for headers in ({}, {"Authorization": "Bearer hm_not-a-token"}, {"Authorization": "Basic abc"}):
        r = requests.get(f"{base}{path}", headers=headers, timeout=30)
        assert r.status_code == 401, (headers, r.text)
        assert r.json()["status"] == 401 and r.json()["error"]
        assert r.headers["WWW-Authenticate"].startswith("Bearer")


def test_revoked_token_and_disabled_user_are_401(base: str, tokens: dict[str, str]) -> None:
    spare = auth.create_api_token(BOB, "spare")
    assert requests.get(f"{base}/api/tasks", headers=hdr(spare), timeout=30).status_code == 200
    token_id = next(t.id for t in auth.list_api_tokens(BOB) if t.name == "spare")
    auth.revoke_api_token(BOB, token_id)
    r = requests.get(f"{base}/api/tasks", headers=hdr(spare), timeout=30)
    assert r.status_code == 401 and "revoked" in r.json()["error"]
    auth.set_disabled(ADMIN, "bob", True)
    try:
        assert requests.get(f"{base}/api/tasks", headers=hdr(tokens["bob"]), timeout=30).status_code == 401
    finally:
        auth.set_disabled(ADMIN, "bob", False)
    assert requests.get(f"{base}/api/tasks", headers=hdr(tokens["bob"]), timeout=30).status_code == 200


def test_viewer_has_no_task_access_but_sees_nodes(base: str, tokens: dict[str, str], flights_csv: Path) -> None:
    vic = tokens["vic"]
    assert requests.get(f"{base}/api/tasks", headers=hdr(vic), timeout=30).status_code == 403
    assert submit(base, vic, SPEC, flights_csv).status_code == 403
    r = requests.get(f"{base}/api/nodes", headers=hdr(vic), timeout=30)
    assert r.status_code == 200
    body = r.json()
    assert len(body["nodes"]) == 2 and body["totals"]["nodes"] == 2
    assert {n["status"] for n in body["nodes"]} <= {"online", "busy"}
    assert all(n["cores"] >= 1 and n["address"] for n in body["nodes"])
    # both embedded workers run on this host: its cores and memory are counted once, slots per worker
    assert len({n["host_id"] for n in body["nodes"]}) == 1
    totals = body["totals"]
    assert (totals["hosts"], totals["live"], totals["slots"]) == (1, 2, sum(n["slots"] for n in body["nodes"]))
    assert (totals["cores"], totals["memory_mb"]) == (body["nodes"][0]["cores"], body["nodes"][0]["memory_mb"])


@pytest.mark.parametrize(("method", "path"), [("GET", "/api/nope"), ("GET", "/api/tasks/x/nope"),
                                              ("POST", "/api/nodes/x"), ("GET", "/api"), ("GET", "/api/")])
def test_unknown_api_path_is_json_404_not_the_ui_page(base: str, tokens: dict[str, str], method: str,
                                                      path: str) -> None:
    r = requests.request(method, f"{base}{path}", headers=hdr(tokens["ann"]), timeout=30)
    assert r.status_code == 404, r.text[:200]
    assert r.headers["content-type"].startswith("application/json")
    assert r.json()["status"] == 404 and "/api/tasks" in r.json()["error"]


@pytest.mark.parametrize(("method", "path", "allowed"), [("PUT", "/api/tasks", ["GET", "HEAD", "POST"]),
                                                         ("PATCH", "/api/tasks/abc", ["DELETE", "GET", "HEAD"]),
                                                         ("DELETE", "/api/nodes", ["GET", "HEAD"]),
                                                         ("POST", "/health", ["GET", "HEAD"])])
def test_wrong_method_is_json_405(base: str, tokens: dict[str, str], method: str, path: str,
                                  allowed: list[str]) -> None:
    r = requests.request(method, f"{base}{path}", headers=hdr(tokens["ann"]), timeout=30)
    assert r.status_code == 405, r.text[:200]
    assert r.json()["status"] == 405 and r.json()["allowed"] == allowed and method in r.json()["error"]
    assert r.headers["Allow"] == ", ".join(allowed)


@pytest.mark.parametrize(("method", "path"), [("GET", "/api/tasks/..%2F..%2Fetc"), ("GET", "/api/tasks/%2e%2e"),
                                              ("POST", "/api/tasks/..%5C..%5Cx/cancel"), ("GET", "/health/..%2F..")])
def test_paths_streamlit_refuses_get_a_json_400(base: str, tokens: dict[str, str], method: str, path: str) -> None:
    """Streamlit's path-security middleware answers these before any route, in plain text."""
    r = requests.request(method, f"{base}{path}", headers=hdr(tokens["ann"]), timeout=30)
    assert r.status_code == 400, r.text[:200]
    assert r.headers["content-type"].startswith("application/json"), r.text[:200]
    assert r.json()["status"] == 400 and "the path is refused" in r.json()["error"]
    # the UI's own paths are not ours: Streamlit's answer stays as it was
    r = requests.get(f"{base}/..%2F..%2Fetc", timeout=30)
    assert r.status_code == 400 and "json" not in r.headers.get("content-type", ""), r.headers


def test_malformed_multipart_is_400_saying_what_to_send(base: str, tokens: dict[str, str], flights_csv: Path) -> None:
    ann = hdr(tokens["ann"])
    before = requests.get(f"{base}/api/tasks", headers=ann, timeout=30).json()["total"]
    what = "send one 'spec' part (JSON) and one 'data' file part"
    for content_type, body in (("multipart/form-data; boundary=xyz", b"garbage"),
                               ("multipart/form-data", b"garbage"),     # no boundary
                               ("multipart/form-data; boundary=xyz",    # a part without a name
                                b"--xyz\r\nContent-Disposition: form-data\r\n\r\nx\r\n--xyz--\r\n")):
        r = requests.post(f"{base}/api/tasks", data=body, timeout=30,
                          headers={**ann, "Content-Type": content_type})
        assert r.status_code == 400, (content_type, body, r.text)
        assert what in r.json()["error"] and r.json()["status"] == 400, r.text
    data = flights_csv.read_bytes()
    two_data_parts = [("data", ("a.csv", data, "text/csv")), ("data", ("b.csv", data, "text/csv"))]
    for spec_part in (("spec.json", json.dumps(SPEC)),   # a file: 3 files in all
                      (None, json.dumps(SPEC))):          # a field: 2 files, but both 'data'
        parts = [("spec", spec_part), *two_data_parts]
        r = requests.post(f"{base}/api/tasks", headers=ann, timeout=60, files=parts)
        assert r.status_code == 400, r.text
        assert what in r.json()["error"], r.text
    assert requests.get(f"{base}/api/tasks", headers=ann, timeout=30).json()["total"] == before


def test_submit_poll_download_equals_pandas(base: str, tokens: dict[str, str], flights_csv: Path) -> None:
    r = submit(base, tokens["ann"], SPEC, flights_csv)
    assert r.status_code == 201, r.text
    task_id = r.json()["task_id"]
    assert r.headers["Location"] == f"/api/tasks/{task_id}"
    assert r.json()["task"]["owner"] == "ann" and r.json()["task"]["spec"]["name"] == "delays by carrier"
    done = wait_final(base, tokens["ann"], task_id)
    assert done["status"] == "completed", done
    assert done["progress"] == 100 and len(done["subtasks"]) == 4
    assert all(s["status"] == "completed" and s["node_name"] for s in done["subtasks"])
    r = requests.get(f"{base}/api/tasks/{task_id}/result", headers=hdr(tokens["ann"]), timeout=60)
    assert r.status_code == 200
    # named after the job, not the task id (RFC 6266 encoding of the space)
    assert r.headers["content-disposition"] == "attachment; filename*=utf-8''delays%20by%20carrier.csv"
    got = pd.read_csv(io.BytesIO(r.content))
    pd.testing.assert_frame_equal(got, expected_result(flights_csv), check_dtype=False, rtol=1e-9)

    listed = requests.get(f"{base}/api/tasks", headers=hdr(tokens["ann"]), timeout=30).json()
    assert task_id in [t["id"] for t in listed["tasks"]]
    # another analyst: the task does not exist for them (404), not even in their list
    bob = hdr(tokens["bob"])
    for method, path in (("get", ""), ("get", "/result"), ("post", "/cancel"), ("post", "/retry"), ("delete", "")):
        r = requests.request(method, f"{base}/api/tasks/{task_id}{path}", headers=bob, timeout=30)
        assert r.status_code == 404, (method, path, r.text)
    assert task_id not in [t["id"] for t in requests.get(f"{base}/api/tasks", headers=bob, timeout=30).json()["tasks"]]
    # the admin sees it
    assert requests.get(f"{base}/api/tasks/{task_id}", headers=hdr(tokens["root"]), timeout=30).status_code == 200


def test_result_of_a_task_without_one_is_409_not_404(base: str, tokens: dict[str, str], tmp_path: Path) -> None:
    """404 means no such task (or someone else's); a task that has no result (yet) is a 409 with the reason."""
    small = tmp_path / "small.csv"
    small.write_text("a,b\n1,2\n3,4\n")
    ann, bob = hdr(tokens["ann"]), hdr(tokens["bob"])
    sleeper = submit(base, tokens["ann"], {"script": "import time\n\ndef process(df):\n    time.sleep(120)\n"
                                                     "    return df\n", "split": {"shards": 1}}, small)
    failing = submit(base, tokens["ann"], {"script": "def process(df):\n    return 1 / 0\n",
                                           "split": {"shards": 1}, "max_attempts": 1}, small)
    assert sleeper.status_code == failing.status_code == 201, (sleeper.text, failing.text)
    sleeper_id, failing_id = sleeper.json()["task_id"], failing.json()["task_id"]
    try:
        r = requests.get(f"{base}/api/tasks/{sleeper_id}/result", headers=ann, timeout=30)
        assert r.status_code == 409 and r.json()["status"] == 409, r.text
        assert "has no result yet (status: " in r.json()["error"], r.text
    finally:
        assert requests.post(f"{base}/api/tasks/{sleeper_id}/cancel", headers=ann, timeout=30).status_code == 200
    assert wait_final(base, tokens["ann"], failing_id)["status"] == "failed"
    for task_id, words in ((sleeper_id, "was cancelled, so it has no result"),
                           (failing_id, "failed, so it has no result: shard 0 failed")):
        r = requests.get(f"{base}/api/tasks/{task_id}/result", headers=ann, timeout=30)
        assert r.status_code == 409 and r.json()["status"] == 409, (task_id, r.text)
        assert words in r.json()["error"], r.text
        r = requests.get(f"{base}/api/tasks/{task_id}/result", headers=bob, timeout=30)
        assert r.status_code == 404, (task_id, r.text)   # someone else's: as if it did not exist
    assert requests.get(f"{base}/api/tasks/nope/result", headers=ann, timeout=30).status_code == 404


def test_bad_spec_is_400_and_nothing_is_queued(base: str, tokens: dict[str, str], flights_csv: Path) -> None:
    ann = tokens["ann"]
    before = requests.get(f"{base}/api/tasks", headers=hdr(ann), timeout=30).json()["total"]
    bad_column = {**SPEC, "pipeline": {**SPEC["pipeline"],
                                       "filter": [{"column": "no_such_column", "op": ">", "value": 1}]}}
    for spec, field in ((bad_column, "pipeline.filter[0].column"), ("{not json", "spec"),
                        ({**SPEC, "priority": 12}, "priority")):
        r = submit(base, ann, spec, flights_csv)
        assert r.status_code == 400, r.text
        assert r.json()["field"].startswith(field), r.json()
    r = requests.post(f"{base}/api/tasks", headers=hdr(ann), timeout=30, files={"spec": (None, json.dumps(SPEC))})
    assert r.status_code == 400 and r.json()["field"] == "data"
    r = requests.post(f"{base}/api/tasks", headers=hdr(ann), timeout=30, json=SPEC)
    assert r.status_code == 400
    assert requests.get(f"{base}/api/tasks", headers=hdr(ann), timeout=30).json()["total"] == before
    r = requests.get(f"{base}/api/tasks?status=bogus", headers=hdr(ann), timeout=30)
    assert r.status_code == 400
    assert requests.get(f"{base}/api/tasks?limit=0", headers=hdr(ann), timeout=30).status_code == 400
    assert requests.get(f"{base}/api/tasks/nope", headers=hdr(ann), timeout=30).status_code == 404


def test_upload_over_the_limit_is_413(base: str, tokens: dict[str, str], tmp_path: Path) -> None:
    big = tmp_path / "big.csv"
    row = b"a,b,c\n" + b"1,2,3\n" * ((UPLOAD_LIMIT_MB + 1) * 1024 * 1024 // 6)
    big.write_bytes(row)
    ann = tokens["ann"]
    before = requests.get(f"{base}/api/tasks", headers=hdr(ann), timeout=30).json()["total"]
    r = submit(base, ann, SPEC, big)
    assert r.status_code == 413 and f"limit of {UPLOAD_LIMIT_MB}.0 MiB" in r.json()["error"]

    def chunked() -> Iterator[bytes]:  # no Content-Length: the limit is enforced while reading
        yield b"--b\r\nContent-Disposition: form-data; name=\"data\"; filename=\"big.csv\"\r\n\r\n"
        with open(big, "rb") as fh:
            while chunk := fh.read(256 * 1024):
                yield chunk
        yield b"\r\n--b--\r\n"

    r = requests.post(f"{base}/api/tasks", data=chunked(), timeout=60,
                      headers={**hdr(ann), "Content-Type": "multipart/form-data; boundary=b"})
    assert r.status_code == 413
    assert requests.get(f"{base}/api/tasks", headers=hdr(ann), timeout=30).json()["total"] == before


def test_system_status(base: str, tokens: dict[str, str], server_env: Path) -> None:
    r = requests.get(f"{base}/api/system/status", headers=hdr(tokens["vic"]), timeout=30)
    assert r.status_code == 200
    body = r.json()
    assert body["health"]["node_pool_ok"] and body["health"]["database_ok"]
    assert 0 <= body["host"]["cpu_percent"] <= 100 and body["host"]["disk_total"] > 0
    assert body["totals"]["nodes"] == 2 and set(body["task_counts"]) >= {"pending", "completed", "failed"}
    # task numbers are every user's (counts only) for every role; an analyst also gets their own
    with closing(sqlite3.connect(server_env / "master.db")) as conn:
        everyone = dict(conn.execute("SELECT status, COUNT(*) FROM tasks GROUP BY status").fetchall())
        anns = dict(conn.execute("SELECT status, COUNT(*) FROM tasks WHERE owner = 'ann' GROUP BY status").fetchall())
    assert body["task_counts"] == {s: everyone.get(s, 0) for s in body["task_counts"]}
    assert body["own_task_counts"] is None and len(body["finished_per_hour"]) == 24
    body = requests.get(f"{base}/api/system/status", headers=hdr(tokens["ann"]), timeout=30).json()
    assert body["own_task_counts"] == {s: anns.get(s, 0) for s in body["task_counts"]}


def test_simulation_is_submitted_without_a_data_part(base: str, tokens: dict[str, str], flights_csv: Path) -> None:
    ann = hdr(tokens["ann"])
    simulation = json.loads((EXAMPLES / "pi_simulation.json").read_text()) | {"trials": 40_000}
    grid_search = json.loads((EXAMPLES / "delay_model_grid_search.json").read_text())
    before = requests.get(f"{base}/api/tasks", headers=ann, timeout=30).json()["total"]
    with open(flights_csv, "rb") as fh:
        r = requests.post(f"{base}/api/tasks", headers=ann, timeout=120, files={
            "spec": (None, json.dumps(simulation)), "data": (flights_csv.name, fh, "text/csv")})
    assert r.status_code == 400 and r.json()["field"] == "data" and "reads no data" in r.json()["error"], r.text
    r = requests.post(f"{base}/api/tasks", headers=ann, timeout=30, files={"spec": (None, json.dumps(grid_search))})
    assert r.status_code == 400 and r.json()["field"] == "data", r.text
    assert "machine_learning job needs the dataset" in r.json()["error"]
    assert requests.get(f"{base}/api/tasks", headers=ann, timeout=30).json()["total"] == before

    r = requests.post(f"{base}/api/tasks", headers=ann, timeout=30, files={"spec": (None, json.dumps(simulation))})
    assert r.status_code == 201, r.text
    done = wait_final(base, tokens["ann"], r.json()["task_id"])
    assert done["status"] == "completed" and done["input_rows"] is None, done
    assert len(done["subtasks"]) == simulation["split"]["shards"]
    r = requests.get(f"{base}/api/tasks/{done['id']}/result", headers=ann, timeout=60)
    expected = expected_moments(shard_outputs(simulation["script"], 40_000, simulation["seed"],
                                              simulation["split"]["shards"]))
    assert_same_moments(pd.read_csv(io.BytesIO(r.content)), expected)


def server_pool(base: str) -> psutil.Process:
    """The node pool process the app at ``base`` runs."""
    port = int(base.rsplit(":", 1)[1])
    server = next(c.pid for c in psutil.net_connections("tcp")
                  if c.laddr and c.laddr.port == port and c.status == psutil.CONN_LISTEN)
    pools = [p for p in psutil.Process(server).children(recursive=True)
             if "hivemind_core.nodepool" in " ".join(p.cmdline()) and p.status() != psutil.STATUS_ZOMBIE]
    assert len(pools) == 1, pools
    return pools[0]


def timed_get(url: str, **kwargs: object) -> tuple[requests.Response, float]:
    started = time.monotonic()
    r = requests.get(url, timeout=60, **kwargs)
    return r, time.monotonic() - started


def test_health_and_nodes_answer_503_at_once_while_the_node_pool_hangs(base: str, tokens: dict[str, str]) -> None:
    pool = server_pool(base)
    pool.suspend()   # up but not answering: every call runs into its deadline
    try:
        r, took = timed_get(f"{base}/health")
        assert r.status_code == 503 and took < 6, (r.status_code, took)
        body = r.json()
        assert body["status"] == "unhealthy"
        assert body["reasons"][0].startswith("Node pool at 127.0.0.1:") and "not reachable" in body["reasons"][0]
        r, took = timed_get(f"{base}/api/nodes", headers=hdr(tokens["vic"]))
        assert r.status_code == 503 and took < 6, (r.status_code, took)
        assert "not reachable" in r.json()["error"] and "restarts its embedded node pool" in r.json()["error"]
    finally:
        pool.resume()
    wait_healthy(base, 30)


def wait_healthy(base: str, timeout: float) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        r = requests.get(f"{base}/health", timeout=30)
        if r.status_code == 200 and r.json()["workers"]["online"] + r.json()["workers"]["busy"] == 2:
            return r.json()
        assert time.monotonic() < deadline, r.text
        time.sleep(0.2)


def test_killed_node_pool_is_restarted_and_work_goes_on(base: str, tokens: dict[str, str], flights_csv: Path) -> None:
    pool = server_pool(base)
    pool.kill()   # kill -9
    r, took = timed_get(f"{base}/health")   # down or already back: either way an answer at once
    assert took < 6 and r.status_code in (200, 503), (r.status_code, took)
    if r.status_code == 503:
        assert "Node pool at" in r.json()["error"] and "restarts its embedded" in r.json()["error"], r.text
    wait_healthy(base, 60)
    assert server_pool(base).pid != pool.pid
    r = submit(base, tokens["ann"], SPEC, flights_csv)
    assert r.status_code == 201, r.text
    done = wait_final(base, tokens["ann"], r.json()["task_id"], timeout=120)
    assert done["status"] == "completed", done
