"""Python stubs for the remotemedia-server protos, generated with grpc_tools.protoc at test time.

The protos live in package directories named `remotemedia/...`, which would collide with the
installed `remotemedia` Python package; the generated modules are therefore placed under a
package of their own, `rm_grpc_stubs`, and their imports rewritten to match.
"""

import importlib
import re
import sys
import types

import pytest

from conftest import ROOT

PROTO_ROOT = ROOT / "signaling" / "proto"
PACKAGE = "rm_grpc_stubs"


def generate(out_dir):
    """Generates the stubs into `out_dir`/rm_grpc_stubs and returns them as a namespace."""
    from grpc_tools import protoc

    target = out_dir / PACKAGE
    target.mkdir(parents=True, exist_ok=True)
    protos = sorted(str(p.relative_to(PROTO_ROOT)) for p in PROTO_ROOT.rglob("*.proto"))
    rc = protoc.main(["protoc", f"-I{PROTO_ROOT}", f"--python_out={target}",
                      f"--grpc_python_out={target}", *protos])
    assert rc == 0, f"protoc failed ({rc}) on {protos}"
    for py in target.rglob("*.py"):
        text = py.read_text()
        py.write_text(re.sub(r"^from remotemedia\.", f"from {PACKAGE}.remotemedia.",
                             text, flags=re.M))
    if str(out_dir) not in sys.path:
        sys.path.insert(0, str(out_dir))
    importlib.invalidate_caches()

    def load(name):
        return importlib.import_module(f"{PACKAGE}.remotemedia.v1.{name}")

    return types.SimpleNamespace(
        types=load("types_pb2"),
        execution=load("execution_pb2"),
        execution_grpc=load("execution_pb2_grpc"),
        streaming=load("streaming_pb2"),
        streaming_grpc=load("streaming_pb2_grpc"),
        signaling=load("webrtc.signaling_pb2"),
        signaling_grpc=load("webrtc.signaling_pb2_grpc"),
    )


@pytest.fixture(scope="session")
def pb(tmp_path_factory):
    """The generated modules: pb.types, pb.execution(_grpc), pb.streaming(_grpc),
    pb.signaling(_grpc)."""
    return generate(tmp_path_factory.mktemp("grpc_stubs"))
