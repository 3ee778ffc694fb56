"""The committed generated code is exactly what protoc makes of protos/nodepool.proto."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
COMMITTED = ROOT / "hivemind_core" / "proto"


def _load_gen_script():
    spec = importlib.util.spec_from_file_location("gen_proto", ROOT / "scripts" / "gen_proto.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.timeout(60)
def test_generated_code_matches_the_proto(tmp_path: Path) -> None:
    generated = _load_gen_script().generate(tmp_path / "proto")
    assert {p.name for p in generated} >= {"nodepool_pb2.py", "nodepool_pb2_grpc.py", "__init__.py"}
    for fresh in generated:
        committed = COMMITTED / fresh.name
        assert committed.exists(), f"{committed} is missing: run scripts/gen_proto.py"
        assert committed.read_text() == fresh.read_text(), (
            f"{committed} is out of step with protos/nodepool.proto: run scripts/gen_proto.py"
        )


def test_generated_code_imports_from_inside_the_package() -> None:
    from hivemind_core.proto import nodepool_pb2, nodepool_pb2_grpc

    # no bare "import nodepool_pb2" that would only work with the proto dir on sys.path
    assert "nodepool_pb2" not in sys.modules

    assert nodepool_pb2_grpc.nodepool__pb2 is nodepool_pb2
    for service in ("NodeManager", "UserManager", "MasterNodeService", "WorkerService", "BlobService"):
        assert hasattr(nodepool_pb2_grpc, f"{service}Stub")
        assert hasattr(nodepool_pb2_grpc, f"{service}Servicer")
