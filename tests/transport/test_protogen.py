"""The generated code is what `make proto` makes from every .proto right now."""

from __future__ import annotations

import ast
from pathlib import Path

from nexus_raft.transport import protogen


def test_generated_code_is_fresh() -> None:
    assert protogen.proto_sources(), "no .proto sources found"
    stale = protogen.stale_files()
    assert stale == [], f"stale generated files {stale}: run `make proto`"


def test_every_proto_is_generated_with_package_relative_imports(tmp_path: Path) -> None:
    written = {p.name for p in protogen.generate(tmp_path)}
    for src in protogen.proto_sources():
        stem = src.stem
        assert {f"{stem}_pb2.py", f"{stem}_pb2.pyi", f"{stem}_pb2_grpc.py"} <= written
        grpc_module = ast.parse((tmp_path / f"{stem}_pb2_grpc.py").read_text())
        relative = [
            node for node in ast.walk(grpc_module)
            if isinstance(node, ast.ImportFrom) and node.level == 1
        ]
        assert any(a.name == f"{stem}_pb2" for n in relative for a in n.names)
        absolute = [
            a.name for node in ast.walk(grpc_module)
            if isinstance(node, ast.Import) for a in node.names
        ]
        assert f"{stem}_pb2" not in absolute
    # Regenerating is deterministic.
    again = tmp_path / "again"
    protogen.generate(again)
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
