"""``nexus-store PATH trees|get|set|scan|stats``: inspect a store from the shell.

Keys and values given on the command line are UTF-8 text, or hex with
``--hex``. Output shows bytes as text when they are valid UTF-8; otherwise
text output escapes them (``\\xff``). ``--json`` output follows ``nexusctl``'s
rule (:mod:`nexus_raft.cli.output`): a key is always under ``"key"`` with
``"key_encoding"``, a value under ``"value"`` with ``"encoding"``, each
``"utf-8"`` or ``"base64"``. PATH is the store's directory, or a member's
``--data-dir`` (its store is ``DATA_DIR/store``). Any failure (missing or locked store,
bad argument, absent key) prints one line to stderr and exits non-zero
(:func:`nexus_raft.cli.common.run_app`: 2 for bad arguments, 1 otherwise).
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import orjson
import typer

from nexus_raft.cli.common import EXIT_USAGE, CliError, run_app
from nexus_raft.cli.output import json_bytes
from nexus_raft.errors import NexusRaftError, StoreLockedError
from nexus_raft.storage import DEFAULT_TREE, Store

PROG = "nexus-store"

app = typer.Typer(
    name=PROG,
    help="Inspect a nexus_raft store (a LevelDB directory) from the shell.",
    add_completion=False,
    pretty_exceptions_enable=False,
)

JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON instead of text.")]
TreeOpt = Annotated[str, typer.Option("--tree", "-t", help="Tree name.")]
HexOpt = Annotated[bool, typer.Option("--hex", help="Keys/values on the command line are hex.")]


@app.callback()
def root(
    ctx: typer.Context,
    path: Annotated[Path, typer.Argument(help="Directory of the store.", show_default=False)],
) -> None:
    """Inspect a nexus_raft store: nexus-store PATH trees|get|set|scan|stats."""
    ctx.obj = path


@contextmanager
def opened(ctx: typer.Context, *, write: bool = False) -> Iterator[Store]:
    """Open the store named on the command line (never creating one).

    A store another process holds (a running node) is read through a copy
    of its files taken now (LevelDB's files are append-only or immutable, so
    the copy opens like a store after a crash: everything written before the
    copy, at most the very last write missing); writes to it are refused.
    """
    path: Path = ctx.obj
    if not path.is_dir():
        raise CliError(f"no store at {path}")
    if not (path / "CURRENT").exists() and (path / "store" / "CURRENT").exists():
        path = path / "store"  # a member's --data-dir
    try:
        store = Store.open(path, create=False)
    except StoreLockedError as exc:
        if write:
            raise CliError(f"store at {path} is in use by another process: read-only") from exc
        print(f"{PROG}: store in use; reading a copy taken now", file=sys.stderr)
        with _open_copy(path) as store:
            yield store
        return
    except NexusRaftError as exc:
        raise CliError(str(exc)) from exc
    with store:
        yield store


_COPY_ATTEMPTS = 5
"""Copies tried before giving up: a busy node may compact away a table the
copied manifest still names (each attempt takes a fresh copy)."""


@contextmanager
def _open_copy(path: Path) -> Iterator[Store]:
    """The store at ``path`` (held by another process), opened from a fresh copy."""
    for attempt in range(1, _COPY_ATTEMPTS + 1):
        with _copy_of(path) as copy:
            try:
                store = Store.open(copy, create=False)
            except NexusRaftError as err:
                if attempt == _COPY_ATTEMPTS:
                    reason = str(err).replace(str(copy), "copy")
                    raise CliError(
                        f"cannot read a copy of the store at {path} ({attempt} attempts; it "
                        f"changes too fast): {reason}"
                    ) from err
                continue
            with store:
                yield store
            return


def _copy_files(source: Path, target: Path, names: list[str]) -> None:
    for name in names:
        try:
            shutil.copy2(source / name, target / name)
        except FileNotFoundError:
            continue  # removed by a compaction while we copied


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return -1


def _is_table(name: str) -> bool:
    return name.endswith((".ldb", ".sst"))


@contextmanager
def _copy_of(path: Path) -> Iterator[Path]:
    """A temporary copy of a LevelDB directory (without its LOCK file)."""
    with tempfile.TemporaryDirectory(prefix="nexus-store-") as tmp:
        copy = Path(tmp) / "store"
        copy.mkdir()
        # Tables first (immutable once written), then the manifest and logs,
        # then the tables written meanwhile or still being written at the
        # start (their size changed): LevelDB names a table in its manifest
        # only once the table is complete, so every table the copied manifest
        # names was there at the start or is there, complete, at the end,
        # unless compacted away within this copy (the caller copies again).
        first = [n for n in os.listdir(path) if _is_table(n)]
        rest = sorted(n for n in os.listdir(path) if not _is_table(n) and n != "LOCK")
        _copy_files(path, copy, [*first, *rest])
        _copy_files(path, copy, [n for n in os.listdir(path) if _is_table(n) and (
            n not in first or _size(path / n) != _size(copy / n))])  # fmt: skip
        yield copy


def arg_bytes(text: str, as_hex: bool, what: str) -> bytes:
    """A command-line argument as bytes: UTF-8, or hex with ``--hex``."""
    if not as_hex:
        return text.encode("utf-8", "surrogateescape")
    try:
        return bytes.fromhex(text)
    except ValueError as exc:
        raise CliError(f"{what} is not valid hex: {text!r}", EXIT_USAGE) from exc


def show(data: bytes) -> str:
    """Bytes for one line of text output: UTF-8, with ``\\xNN`` escapes for
    invalid bytes and for control characters (so tabs and newlines cannot
    break the tab-separated, line-per-pair output)."""
    text = data.decode("utf-8", "backslashreplace")
    if text.isprintable():
        return text
    return "".join(ch if ch.isprintable() else _escape(ch) for ch in text)


def _escape(ch: str) -> str:
    code = ord(ch)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def as_json(key: bytes, value: bytes) -> dict[str, object]:
    """A pair for JSON output: the same fields whatever the bytes hold."""
    return {**json_bytes(key, "key"), **json_bytes(value)}


def emit_json(obj: object) -> None:
    typer.echo(orjson.dumps(obj, option=orjson.OPT_INDENT_2).decode())


def check_tree_exists(store: Store, tree: str) -> None:
    # Reading must not create trees as a side effect of a typo.
    if tree not in store.tree_names():
        raise CliError(f"no tree {tree!r} (trees: {', '.join(store.tree_names())})")


@app.command()
def trees(ctx: typer.Context, json: JsonOpt = False) -> None:
    """List the tree names."""
    with opened(ctx) as store:
        names = store.tree_names()
    if json:
        emit_json(names)
    else:
        for name in names:
            typer.echo(name)


@app.command()
def get(
    ctx: typer.Context,
    key: Annotated[str, typer.Argument(help="The key.")],
    tree: TreeOpt = DEFAULT_TREE,
    hex_: HexOpt = False,
    json: JsonOpt = False,
) -> None:
    """Print the value of KEY (exit 1 if absent)."""
    raw_key = arg_bytes(key, hex_, "KEY")
    with opened(ctx) as store:
        check_tree_exists(store, tree)
        value = store.tree(tree).get(raw_key)
    if value is None:
        raise CliError(f"key not found: {show(raw_key)!r} in tree {tree!r}")
    if json:
        emit_json({"tree": tree, **as_json(raw_key, value)})
    else:
        typer.echo(show(value))


@app.command("set")
def set_(
    ctx: typer.Context,
    key: Annotated[str, typer.Argument(help="The key.")],
    value: Annotated[str, typer.Argument(help="The value.")],
    tree: TreeOpt = DEFAULT_TREE,
    hex_: HexOpt = False,
    json: JsonOpt = False,
) -> None:
    """Set KEY to VALUE (fsync'd), creating the tree if needed."""
    raw_key = arg_bytes(key, hex_, "KEY")
    raw_value = arg_bytes(value, hex_, "VALUE")
    with opened(ctx, write=True) as store:
        store.tree(tree).set(raw_key, raw_value)
        store.flush()
    if json:
        emit_json({"tree": tree, **as_json(raw_key, raw_value)})


@app.command()
def scan(
    ctx: typer.Context,
    prefix: Annotated[str, typer.Argument(help="Only keys starting with this.")] = "",
    tree: TreeOpt = DEFAULT_TREE,
    limit: Annotated[
        int | None, typer.Option("--limit", "-n", min=0, help="At most this many pairs.")
    ] = None,
    reverse: Annotated[bool, typer.Option("--reverse", help="Descending key order.")] = False,
    hex_: HexOpt = False,
    json: JsonOpt = False,
) -> None:
    """Print key/value pairs in key order (tab-separated), optionally under PREFIX."""
    raw_prefix = arg_bytes(prefix, hex_, "PREFIX")
    pairs: list[tuple[bytes, bytes]] = []
    with opened(ctx) as store:
        check_tree_exists(store, tree)
        for pair in store.tree(tree).scan_prefix(raw_prefix, reverse=reverse):
            if limit is not None and len(pairs) >= limit:
                break
            pairs.append(pair)
    if json:
        emit_json([as_json(k, v) for k, v in pairs])
    else:
        for k, v in pairs:
            typer.echo(f"{show(k)}\t{show(v)}")


@app.command()
def stats(ctx: typer.Context, json: JsonOpt = False) -> None:
    """Show per-tree key counts and sizes, and the size on disk."""
    with opened(ctx) as store:
        per_tree = {}
        for name in store.tree_names():
            keys = data = 0
            for k, v in store.tree(name).iter():
                keys += 1
                data += len(k) + len(v)
            per_tree[name] = {"keys": keys, "bytes": data}
        # Measured while open: a store a node holds is read from a copy
        # that is gone once the block ends (its size is the original's).
        disk = sum(entry.stat().st_size for entry in os.scandir(store.path) if entry.is_file())
    path = str(ctx.obj)
    report = {"path": path, "trees": per_tree, "disk_bytes": disk}
    if json:
        emit_json(report)
        return
    typer.echo(f"path: {path}")
    typer.echo(f"disk: {disk} bytes")
    typer.echo("trees:")
    width = max(len(name) for name in per_tree)
    for name, info in per_tree.items():
        typer.echo(f"  {name:<{width}}  {info['keys']} keys  {info['bytes']} bytes")


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``nexus-store``; returns the exit status."""
    return run_app(app, PROG, argv)


if __name__ == "__main__":
    sys.exit(main())
