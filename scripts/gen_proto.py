"""Generate the Python code for ``protos/nodepool.proto`` into ``hivemind_core/proto/``.

    .venv/bin/python scripts/gen_proto.py [--out DIR]

grpc_tools writes ``import nodepool_pb2 as nodepool__pb2`` into the gRPC
module, which only works with the output dir on ``sys.path``; this script
rewrites it to a package-relative import so the code imports cleanly from
inside ``hivemind_core``. Never edit the generated files by hand: change the
.proto and rerun this (tests/test_engine_proto.py fails when they differ).
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PROTO_DIR = ROOT / "protos"
PROTO = "nodepool.proto"
DEFAULT_OUT = ROOT / "hivemind_core" / "proto"
INIT_TEXT = '"""Generated from protos/nodepool.proto by scripts/gen_proto.py — do not edit."""\n'


def generate(out_dir: Path) -> list[Path]:
    """Run protoc into ``out_dir``; return the generated files."""
    from grpc_tools import protoc
    import grpc_tools

    out_dir.mkdir(parents=True, exist_ok=True)
    include = Path(grpc_tools.__file__).parent / "_proto"
    args = [
        "grpc_tools.protoc",
        f"-I{PROTO_DIR}",
        f"-I{include}",
        f"--python_out={out_dir}",
        f"--pyi_out={out_dir}",
        f"--grpc_python_out={out_dir}",
        PROTO,
    ]
    if protoc.main(args) != 0:
        raise SystemExit(f"protoc failed on {PROTO_DIR / PROTO}")
    grpc_module = out_dir / "nodepool_pb2_grpc.py"
    text = grpc_module.read_text(encoding="utf-8")
    text = re.sub(r"^import nodepool_pb2 as", "from . import nodepool_pb2 as", text, flags=re.M)
    grpc_module.write_text(text, encoding="utf-8")
    (out_dir / "__init__.py").write_text(INIT_TEXT, encoding="utf-8")
    return sorted(p for p in out_dir.iterdir() if p.suffix in (".py", ".pyi"))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args(argv)
    for path in generate(args.out):
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
