"""The generated code is what `make proto` makes from every .proto right now."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

from nexus_raft.transport import etcdproto, protogen


def test_generated_code_is_fresh() -> None:
    assert protogen.proto_sources(), "no .proto sources found"
    stale = protogen.stale_files()
    assert stale == [], f"stale generated files {stale}: run `make proto`"


def test_every_proto_is_generated_with_package_relative_imports(tmp_path: Path) -> None:
    written = {p.relative_to(tmp_path).as_posix() for p in protogen.generate(tmp_path)}
    for src in protogen.proto_sources():
        rel = src.relative_to(protogen.PROTO_DIR).with_suffix("")
        stem = rel.as_posix()
        assert {f"{stem}_pb2.py", f"{stem}_pb2.pyi", f"{stem}_pb2_grpc.py"} <= written
        grpc_module = ast.parse((tmp_path / f"{stem}_pb2_grpc.py").read_text())
        stem = rel.name
        relative = [
            node for node in ast.walk(grpc_module)
            if isinstance(node, ast.ImportFrom) and node.level == 1
        ]
        if "service " in src.read_text():
            assert any(a.name == f"{stem}_pb2" for n in relative for a in n.names)
        absolute = [
            a.name for node in ast.walk(grpc_module)
            if isinstance(node, ast.Import) for a in node.names
        ]
        assert f"{stem}_pb2" not in absolute
    # Regenerating is deterministic.
    again = tmp_path / "again"
    protogen.generate(again)
    assert "etcd/_pool.py" in written
    for name in written:
        assert (again / name).read_bytes() == (tmp_path / name).read_bytes()


def test_stale_and_extra_files_are_detected(tmp_path: Path) -> None:
    protogen.generate(tmp_path)
    assert protogen.stale_files(tmp_path) == []
    target = tmp_path / "raft_pb2.py"
    target.write_text(target.read_text() + "\n# edited by hand\n")
    (tmp_path / "gone_pb2.py").write_text("")
    assert protogen.stale_files(tmp_path) == ["gone_pb2.py", "raft_pb2.py"]
    assert protogen.main(["--check", "--out", str(tmp_path)]) == 1
    protogen.main(["--out", str(tmp_path)])
    assert not (tmp_path / "gone_pb2.py").exists()
    assert protogen.main(["--check", "--out", str(tmp_path)]) == 0


def test_transport_imports_nothing_else_of_nexus_raft() -> None:
    package = Path(protogen.__file__).parent
    for path in package.rglob("*.py"):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            for name in names:
                if name.startswith("nexus_raft"):
                    assert name == "nexus_raft.errors" or name.startswith(
                        "nexus_raft.transport"
                    ), f"{path.name} imports {name}"


def test_etcd_protos_are_etcds_own_stripped_plus_the_35_additions() -> None:
    # The checked-in copies are what `make proto` derives from Debian's
    # golang-etcd-server-dev (CI installs it; a laptop without it skips).
    if not etcdproto.DEBIAN_SOURCE.is_dir():
        pytest.skip("golang-etcd-server-dev is not installed")
    for name, text in etcdproto.derive().items():
        assert (protogen.PROTO_DIR / "etcd" / name).read_text() == text, name


def test_strip_annotations_removes_gateway_and_gogo_options_only() -> None:
    source = (
        'syntax = "proto3";\npackage p;\n\nimport "gogoproto/gogo.proto";\n'
        'import "etcd/mvcc/mvccpb/kv.proto";\n\n// for grpc-gateway\n'
        'import "google/api/annotations.proto";\n\noption (gogoproto.marshaler_all) = true;\n'
        "service S {\n  rpc A(X) returns (stream Y) {\n      option (google.api.http) = {\n"
        '        post: "/a"\n        body: "*"\n        additional_bindings {\n'
        '            post: "/b"\n        }\n    };\n  }\n}\n'
        "message X {\n  int64 a = 1 [(gogoproto.nullable) = false];\n}\n"
    )
    out = etcdproto.strip_annotations(source)
    assert "gogoproto" not in out and "google" not in out
    assert 'import "nexus_raft/transport/proto/etcd/kv.proto";' in out
    assert "rpc A(X) returns (stream Y) {}" in out
    assert "int64 a = 1;" in out


_PRIVATE_POOL_CHECK = """
from google.protobuf import descriptor_pb2, descriptor_pool

from nexus_raft.transport._generated.etcd import kv_pb2, rpc_pb2

assert rpc_pb2.DESCRIPTOR.pool is not descriptor_pool.Default()
try:
    descriptor_pool.Default().FindMessageTypeByName("etcdserverpb.RangeRequest")
except KeyError:
    pass
else:
    raise SystemExit("etcdserverpb.RangeRequest is in the default descriptor pool")
# etcd's kv.proto registered under another file name (what a client library does).
proto = descriptor_pb2.FileDescriptorProto.FromString(kv_pb2.DESCRIPTOR.serialized_pb)
proto.name = "etcd/api/mvccpb/kv.proto"
other = descriptor_pool.Default().AddSerializedFile(proto.SerializeToString())
assert other.package == "mvccpb", other.package
print("private")
"""


def test_etcd_messages_live_in_a_private_descriptor_pool() -> None:
    # Another library's generated etcd code (e.g. an etcd client) can then
    # define the same etcdserverpb symbols in the default pool, in one process.
    # Checked in a fresh interpreter: what other tests imported into this
    # process's default pool (an etcd client library) is not ours, and the
    # copy of kv.proto added here must not leak into them either.
    out = subprocess.run(
        [sys.executable, "-c", _PRIVATE_POOL_CHECK],
        cwd=Path(protogen.__file__).resolve().parents[2],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0 and out.stdout.strip() == "private", out.stderr[-2000:]
