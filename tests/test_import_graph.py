"""The package's import graph: no cycles between files, dependencies point one way.

Built from ``ast`` over every module of ``nexus_raft`` (generated code
excluded), counting every import statement wherever it stands (module level,
``TYPE_CHECKING`` blocks, function bodies): a cycle hidden behind
``TYPE_CHECKING`` or a lazy import is still a cycle for a reader.

Rules (DESIGN.md): ``storage`` and ``transport`` import nothing else of
``nexus_raft`` but ``errors``; ``consensus`` imports ``storage``,
``transport`` and ``errors`` only, and its ``core`` imports no I/O; ``kv``
and ``witness`` are built on ``consensus``; nothing imports ``cli`` or
``demo``.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1] / "nexus_raft"
_IO_MODULES = {"asyncio", "grpc", "plyvel", "time", "socket", "threading", "subprocess", "os"}


def _module_name(path: Path) -> str:
    rel = path.relative_to(ROOT.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _modules() -> dict[str, Path]:
    """Every module; generated protobuf code is included as leaves (never parsed)."""
    return {_module_name(path): path for path in ROOT.rglob("*.py")}


def _is_package(path: Path) -> bool:
    return path.name == "__init__.py"


def _resolve_relative(name: str, path: Path, node: ast.ImportFrom) -> str:
    if not node.level:
        return node.module or ""
    base = name.split(".") if _is_package(path) else name.split(".")[:-1]
    if node.level > 1:
        base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def imports_of(name: str, path: Path, modules: dict[str, Path]) -> tuple[set[str], set[str]]:
    """(nexus_raft modules imported, top-level third-party/stdlib names imported)."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    inner: set[str] = set()
    outer: set[str] = set()

    def target(dotted: str) -> None:
        if dotted == "nexus_raft" or dotted.startswith("nexus_raft."):
            while dotted and dotted not in modules:
                dotted = dotted.rpartition(".")[0]
            if dotted and dotted != name:
                inner.add(dotted)
        else:
            outer.add(dotted.split(".")[0])

    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                target(alias.name)
        elif isinstance(node, ast.ImportFrom):
            base = _resolve_relative(name, path, node)
            for alias in node.names:
                full = f"{base}.{alias.name}"
                target(full if full in modules else base)
    return inner, outer


def build_graph() -> tuple[dict[str, set[str]], dict[str, set[str]]]:
    modules = _modules()
    graph: dict[str, set[str]] = {}
    external: dict[str, set[str]] = {}
    for name, path in modules.items():
        if "_generated" in path.parts:
            graph[name], external[name] = set(), set()
            continue
        graph[name], external[name] = imports_of(name, path, modules)
    return graph, external


def find_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []
    counter = [0]

    def visit(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def _area(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


# area -> areas of nexus_raft it may import (besides itself)
ALLOWED = {
    "": {"errors"},
    "errors": set(),
    "storage": {"errors"},
    "transport": {"errors"},
    "consensus": {"errors", "storage", "transport"},
    "kv": {"errors", "storage", "transport", "consensus"},
    "witness": {"errors", "storage", "transport", "consensus", "kv"},
    "cli": {"errors", "storage", "transport", "consensus", "kv", "witness", "demo"},
    "demo": {"errors", "storage", "transport", "consensus", "kv", "witness", "cli"},
}


def test_no_import_cycles() -> None:
    graph, _ = build_graph()
    cycles = find_cycles(graph)
    assert not cycles, "import cycles: " + "; ".join(" <-> ".join(c) for c in cycles)


def test_dependencies_point_one_way() -> None:
    graph, _ = build_graph()
    bad = []
    for module, targets in sorted(graph.items()):
        area = _area(module)
        for t in sorted(targets):
            t_area = _area(t)
            if t_area != area and t_area not in ALLOWED.get(area, set()):
                bad.append(f"{module} -> {t}")
    assert not bad, "forbidden imports: " + ", ".join(bad)


def test_nothing_outside_the_cli_imports_the_cli() -> None:
    graph, _ = build_graph()
    bad = [
        f"{m} -> {t}"
        for m, ts in graph.items()
        for t in ts
        if _area(t) in ("cli", "demo") and _area(m) not in ("cli", "demo")
    ]
    assert not bad


def test_core_is_sans_io() -> None:
    graph, external = build_graph()
    for module in graph:
        if not module.startswith("nexus_raft.consensus.core"):
            continue
        assert not (external[module] & _IO_MODULES), f"{module} imports I/O"
        for t in graph[module]:
            assert t.startswith("nexus_raft.consensus.core") or t == "nexus_raft.errors", (
                f"{module} -> {t}"
            )


def test_every_package_init_states_its_job_and_imports() -> None:
    for path in ROOT.rglob("__init__.py"):
        if "_generated" in path.parts:
            continue
        doc = ast.get_docstring(ast.parse(path.read_text(encoding="utf-8")))
        assert doc, f"{path} has no docstring"
        assert "import" in doc.lower(), f"{path}: say what the package may import"


@pytest.mark.parametrize(
    "graph, cyclic",
    [
        ({"a": {"b"}, "b": {"a"}}, True),
        ({"a": {"b"}, "b": {"c"}, "c": {"a"}}, True),
        ({"a": {"b"}, "b": {"c"}, "c": set()}, False),
    ],
)
def test_cycle_finder_finds_cycles(graph: dict[str, set[str]], cyclic: bool) -> None:
    assert bool(find_cycles(graph)) is cyclic


def test_modules_stay_small() -> None:
    big = []
    for path in ROOT.rglob("*.py"):
        if "_generated" in path.parts:
            continue
        n = len(path.read_text(encoding="utf-8").splitlines())
        if n > 600:
            big.append(f"{path.relative_to(ROOT)} ({n} lines)")
    assert not big, "modules over 600 lines: " + ", ".join(big)


def test_design_names_still_import_from_consensus() -> None:
    """DESIGN.md's import line keeps working; the KV names are kv's own objects."""
    import nexus_raft.kv as kv
    from nexus_raft.consensus import (  # noqa: F401 - the import is the test
        Client,
        KVStateMachine,
        NodeConfig,
        RaftNode,
        StateMachine,
        SyncClient,
    )

    assert Client is kv.Client and SyncClient is kv.SyncClient
    assert KVStateMachine is kv.KVStateMachine


def test_raft_node_knows_no_application() -> None:
    """The KV service reaches a node only through the state machine's ServesClients."""
    from nexus_raft.consensus.state_machine import ServesClients
    from nexus_raft.kv import KVStateMachine

    assert isinstance(KVStateMachine(), ServesClients)
    source = (ROOT / "consensus" / "node" / "node.py").read_text(encoding="utf-8")
    assert "KVService" not in source and "KVStateMachine" not in source
