"""``nexusctl snapshot``: compact now, save a backup to a file, check a backup file.

``nexusctl snapshot`` (no subcommand) takes a snapshot on a member and
compacts its log, as before. ``snapshot save FILE`` streams a consistent
backup from one member (``--endpoint``, default the leader) into FILE: it is
written to ``FILE.part``, verified (sha256 trailer) and renamed, so FILE
exists only when complete; progress goes to stderr when it is a terminal.
``snapshot status FILE`` verifies a backup and prints what it holds.
Restore it with ``nexus-node restore FILE --data-dir DIR --id N --peers ...``.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated

import typer

from nexus_raft.cli.common import CliError
from nexus_raft.cli.ctl_base import call, emit
from nexus_raft.cli.output import size
from nexus_raft.consensus.node.backup import describe, verify_backup_file
from nexus_raft.errors import CorruptionError

__all__ = ["snapshot_app"]

snapshot_app = typer.Typer(
    add_completion=False,
    pretty_exceptions_enable=False,
    invoke_without_command=True,
    help="Snapshot a member now, or save/check a backup file (save FILE, status FILE).",
)

EndpointOpt = Annotated[str | None, typer.Option(help="This member instead of the leader.")]


@snapshot_app.callback()
def snapshot(ctx: typer.Context, endpoint: EndpointOpt = None) -> None:
    """Take a snapshot now (compacts the log) and print its index; or a subcommand."""
    if ctx.invoked_subcommand is not None:
        return
    index = call(ctx, lambda c: c.snapshot(endpoint=endpoint))
    emit(ctx, f"snapshot at index {index}", {"index": index})


def _progress() -> object:
    if not sys.stderr.isatty():
        return None

    def show(done: int) -> None:
        sys.stderr.write(f"\rsaving backup: {size(done)}   ")
        sys.stderr.flush()

    return show


@snapshot_app.command("save")
def save(
    ctx: typer.Context,
    file: Annotated[Path, typer.Argument(help="Where to write the backup.")],
    endpoint: EndpointOpt = None,
) -> None:
    """Stream a consistent backup from one member into FILE (checksummed)."""
    if file.exists():
        raise CliError(f"{file} already exists; choose a new file name")
    part = file.with_name(file.name + ".part")
    try:
        out = part.open("wb")
    except OSError as exc:
        raise CliError(f"cannot write {part}: {exc.strerror or exc}") from None
    show = _progress()
    try:
        with out:
            meta = call(
                ctx,
                lambda c: c.backup(out, endpoint=endpoint, progress=show),  # type: ignore[arg-type]
            )
            out.flush()
            os.fsync(out.fileno())
        os.replace(part, file)
    except OSError as exc:  # the disk filled up, the directory went away, ...
        part.unlink(missing_ok=True)
        raise CliError(f"cannot write {part}: {exc.strerror or exc}") from None
    except BaseException:
        part.unlink(missing_ok=True)
        raise
    finally:
        if show is not None:
            sys.stderr.write("\n")
    total = file.stat().st_size
    emit(
        ctx,
        f"saved backup at index {meta.index} (term {meta.term}, {size(total)}) to {file}",
        {**describe(meta), "file": str(file), "bytes": total},
    )


@snapshot_app.command("status")
def status(
    ctx: typer.Context,
    file: Annotated[Path, typer.Argument(help="A backup file.")],
) -> None:
    """Verify a backup file (exit 1 if damaged) and print what it holds."""
    try:
        with file.open("rb") as f:
            meta, data_bytes, digest = verify_backup_file(f)
    except OSError as exc:
        raise CliError(f"cannot read {file}: {exc.strerror or exc}") from None
    except CorruptionError as exc:
        raise CliError(f"{file}: {exc}") from None
    data = {**describe(meta), "file": str(file), "data_bytes": data_bytes, "sha256": digest}
    human = "\n".join(
        [
            f"file          {file}",
            f"index         {meta.index} (term {meta.term})",
            f"cluster       {meta.cluster_id} (taken on member {meta.member_id})",
            f"members       {', '.join(f'{k}={v}' for k, v in meta.members.items())}",
            f"state machine {meta.state_machine}",
            f"data          {size(data_bytes)}",
            f"sha256        {digest}",
        ]
    )
    emit(ctx, human, data)
