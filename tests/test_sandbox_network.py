"""User code has no network and no capabilities, even when the worker runs as root:
no raw packet socket (it read other users' tokens and cookies off the wire), no
MPTCP (it got around Landlock's TCP rule to the web app and node pool), no UDP or
IPv6 or netlink, no capability left, and /etc's secrets (shadow, ssh, ssl keys)
are not readable. Local AF_UNIX pipes (multiprocessing) still work.

Real parts: the worker's real sandbox child running a real script, and a real TCP
server on 127.0.0.1 that must never see a connection."""

from __future__ import annotations

import json
import os
import socket
import textwrap
import threading
from pathlib import Path

import pyarrow as pa
import pytest

from hivemind_core.worker.netdeny import _socket_filter, ARCHES
from tests.test_jobs_script_errors import sandbox  # noqa: F401 - the module's real sandbox child
from tests.test_sandbox_confinement import run, shard  # noqa: F401 - the confinement tests' shard and runner

PROBE = textwrap.dedent("""
    import errno, os, socket, multiprocessing

    def attempt(family, kind, proto, address=None):
        try:
            s = socket.socket(family, kind, proto)
        except OSError as exc:
            return "refused:" + errno.errorcode.get(exc.errno, str(exc.errno))
        try:
            if address:
                s.settimeout(3)
                s.connect(address)
                return "CONNECTED"
            return "opened"
        except OSError as exc:
            return "connect failed:" + errno.errorcode.get(exc.errno, str(exc.errno))
        finally:
            s.close()

    def readable(path):
        try:
            with open(path, "rb") as fh:
                fh.read(1)
            return "read"
        except OSError as exc:
            return "denied:" + errno.errorcode.get(exc.errno, str(exc.errno))

    def process(df):
        port = int(open("port").read()) if os.path.exists("port") else PORT
        status = dict(line.split(":", 1) for line in open("/proc/self/status").read().splitlines() if ":" in line)
        a, b = multiprocessing.Pipe()
        a.send("pipe ok")
        out = {
            "packet": attempt(17, socket.SOCK_RAW, 768),
            "tcp": attempt(socket.AF_INET, socket.SOCK_STREAM, 0, ("127.0.0.1", port)),
            "mptcp": attempt(socket.AF_INET, socket.SOCK_STREAM, 262, ("127.0.0.1", port)),
            "udp": attempt(socket.AF_INET, socket.SOCK_DGRAM, 0),
            "tcp6": attempt(socket.AF_INET6, socket.SOCK_STREAM, 0),
            "netlink": attempt(16, socket.SOCK_RAW, 0),
            "unix": attempt(socket.AF_UNIX, socket.SOCK_STREAM, 0),
            "pipe": b.recv(),
            "cap_eff": status["CapEff"].strip(), "cap_bnd": status["CapBnd"].strip(),
            "shadow": readable("/etc/shadow"), "passwd": readable("/etc/passwd"),
            "ld_cache": readable("/etc/ld.so.cache"),
        }
        df["probe"] = json.dumps(out)
        return df.head(1)
""")


@pytest.fixture
def listener():
    """A TCP server on 127.0.0.1 that records every connection it accepts."""
    server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    server.settimeout(0.2)
    accepted: list[tuple] = []
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, peer = server.accept()
            except OSError:
                continue
            accepted.append(peer)
            conn.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield server.getsockname()[1], accepted
    stop.set()
    thread.join(5)
    server.close()


def test_user_code_has_no_network_and_no_capabilities(sandbox, shard, listener):  # noqa: F811
    port, accepted = listener
    script = "import json\nPORT = %d\n" % port + PROBE
    result, data = run(sandbox, shard, script)
    assert result.ok, result.message
    seen = json.loads(pa.ipc.open_file(pa.BufferReader(data)).read_pandas()["probe"][0])
    for kind in ("packet", "tcp", "mptcp", "udp", "tcp6", "netlink"):
        assert seen[kind].startswith("refused:"), (kind, seen[kind])
    assert seen["mptcp"] == "refused:EAFNOSUPPORT"
    assert seen["unix"] == "opened" and seen["pipe"] == "pipe ok"
    assert int(seen["cap_eff"], 16) == 0 and int(seen["cap_bnd"], 16) == 0, seen
    assert seen["passwd"] == "read" and seen["ld_cache"] == "read"
    if os.path.exists("/etc/shadow"):
        assert seen["shadow"].startswith("denied:"), seen["shadow"]
    assert accepted == []   # nothing reached the server by any route


def test_the_filter_program_jumps_where_it_should() -> None:
    """Walk the BPF program by hand for each case (an off-by-one jump would allow or deny
    the wrong calls, and the live test only sees this machine's architecture)."""
    arch, nr_socket, nr_uring = ARCHES["x86_64"]
    program = _socket_filter(arch, nr_socket, nr_uring)

    def verdict(data: dict[int, int]) -> int:
        acc, pc = 0, 0
        while True:
            ins = program[pc]
            if ins.code == 0x20:
                acc, pc = data[ins.k], pc + 1
            elif ins.code == 0x15:
                pc += 1 + (ins.jt if acc == ins.k else ins.jf)
            elif ins.code == 0x35:
                pc += 1 + (ins.jt if acc >= ins.k else ins.jf)
            else:
                return ins.k

    allow, eperm, eafnosupport = 0x7FFF0000, 0x00050000 | 1, 0x00050000 | 97

    def call(nr: int, arg0: int = 0, machine: int = arch) -> int:
        return verdict({4: machine, 0: nr, 16: arg0})

    assert call(0) == allow                                  # read
    assert call(nr_socket, 1) == allow                       # AF_UNIX
    for family in (2, 10, 16, 17):                           # inet, inet6, netlink, packet
        assert call(nr_socket, family) == eafnosupport
    assert call(nr_uring) == eperm
    assert call(nr_socket | 0x40000000, 2) == eperm          # x32
    assert call(102, 1, machine=0x40000003) == eperm         # i386 socketcall
