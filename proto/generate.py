"""Generate lrukv_proto/ from proto/*.proto, or check that the committed code is current.

    python proto/generate.py          # rewrite lrukv_proto/v1/*_pb2*.py(i)
    python proto/generate.py --check  # exit 1 if the committed files differ

protoc names Python modules after the .proto path (``lrukv/v1/kv.proto`` ->
``lrukv.v1.kv_pb2``), which would land inside the dependency-free core package.
The generated modules live in ``lrukv_proto`` instead, so the one import line
protoc writes in the gRPC module is rewritten to match.
"""

from __future__ import annotations

import argparse
import difflib
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PROTO_ROOT = ROOT / "proto"
OUT_PACKAGE = "lrukv_proto"
SOURCES = ["lrukv/v1/kv.proto"]
BIN = Path(sys.executable).parent  # mypy-protobuf's plugins sit beside the interpreter


def generate(into: Path) -> dict[str, str]:
    """Run protoc into *into*; return {relative path under lrukv_proto: text}."""
    command = [
        sys.executable,
        "-m",
        "grpc_tools.protoc",
        f"-I{PROTO_ROOT}",
        f"--plugin=protoc-gen-mypy={BIN / 'protoc-gen-mypy'}",
        f"--plugin=protoc-gen-mypy_grpc={BIN / 'protoc-gen-mypy_grpc'}",
        f"--python_out={into}",
        f"--grpc_python_out={into}",
        f"--mypy_out={into}",
        f"--mypy_grpc_out={into}",
        *SOURCES,
    ]
    subprocess.run(command, check=True, cwd=PROTO_ROOT)
    files: dict[str, str] = {}
    for path in sorted((into / "lrukv").rglob("*_pb2*")):
        text = path.read_text()
        text = text.replace("from lrukv.v1 import", f"from {OUT_PACKAGE}.v1 import")
        text = text.replace("import lrukv.v1.", f"import {OUT_PACKAGE}.v1.")
        text = text.replace(" lrukv.v1.kv_pb2", f" {OUT_PACKAGE}.v1.kv_pb2")
        files[str(path.relative_to(into / "lrukv"))] = text
    return files


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="compare, do not write")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        files = generate(Path(tmp))
    out_root = ROOT / OUT_PACKAGE
    stale = []
    for relative, text in files.items():
        target = out_root / relative
        current = target.read_text() if target.exists() else ""
        if current == text:
            continue
        if args.check:
            stale.append(relative)
            diff = difflib.unified_diff(
                current.splitlines(), text.splitlines(), str(target), "generated", lineterm=""
            )
            print("\n".join(list(diff)[:40]))
        else:
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(text)
            print(f"wrote {target.relative_to(ROOT)}")
    if stale:
        print(f"stale generated code: {', '.join(stale)}; run: python proto/generate.py")
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
