"""``nexus-node restore FILE``: a new cluster member's data directory from a backup.

::

    nexusctl snapshot save backup.nxb
    nexus-node restore backup.nxb --id 1 --peers 1=10.0.0.1:7001,2=10.0.0.2:7001,3=... \\
        --data-dir /var/lib/nexus/1          # on each new member, with its own --id
    nexus-node --id 1 --listen 10.0.0.1:7001 --peers ... --data-dir /var/lib/nexus/1

As ``etcdutl snapshot restore``: every member of the NEW cluster is restored
from the same file with the new ``--peers``; they then start as one cluster
whose state is the backup's (every key with its revision). The file is
verified in full before anything is written; a damaged file, or a data
directory that already holds a store, is refused with one line.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from nexus_raft.cli.common import CliError, config_message, fail, parse_peers
from nexus_raft.cli.output import size

__all__ = ["app"]

app = typer.Typer(
    add_completion=False,
    pretty_exceptions_enable=False,
    help="Create a new cluster member's data directory from a backup (nexusctl snapshot save).",
)


@app.command()
def restore(
    file: Annotated[Path, typer.Argument(help="The backup file.")],
    node_id: Annotated[int, typer.Option("--id", help="This member's id in the new cluster.")],
    peers: Annotated[
        str, typer.Option(help="The NEW cluster's members: 1=HOST:PORT,2=HOST:PORT,...")
    ],
    data_dir: Annotated[Path, typer.Option(help="The new member's (empty) data directory.")],
    witness: Annotated[
        list[int] | None, typer.Option(help="Mark a member of --peers as a witness (repeatable).")
    ] = None,
    json_output: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Restore FILE into DATA_DIR as member ID of a new cluster of PEERS."""
    import json

    from nexus_raft.consensus.node.config import NodeConfig
    from nexus_raft.consensus.node.restore import restore_backup
    from nexus_raft.errors import ConfigError, CorruptionError
    from nexus_raft.kv.state_machine import KVStateMachine

    peer_map = parse_peers(peers)
    try:
        config = NodeConfig(
            id=node_id,
            listen=peer_map.get(node_id, "127.0.0.1:0"),
            peers=peer_map,
            data_dir=data_dir,
            witnesses=frozenset(witness or ()),
        )
    except (ConfigError, TypeError, ValueError) as exc:
        fail(config_message(str(exc)))
    try:
        f = file.open("rb")
    except OSError as exc:
        raise CliError(f"cannot read {file}: {exc.strerror or exc}") from None
    with f:
        try:
            meta = restore_backup(f, config, None if config.is_witness else KVStateMachine())
        except CorruptionError as exc:
            raise CliError(f"{file} is not a usable backup: {exc}") from None
        except ConfigError as exc:
            raise CliError(str(exc)) from None
        except OSError as exc:
            # The data directory cannot be created or written (nothing of it is left).
            where = exc.filename or data_dir
            raise CliError(f"cannot restore into {where}: {exc.strerror or exc}") from None
    summary = {
        "file": str(file),
        "data_dir": str(data_dir),
        "id": node_id,
        "index": meta.index,
        "term": meta.term,
        "from_cluster": meta.cluster_id,
        "cluster_id": config.effective_cluster_id,
    }
    if json_output:
        typer.echo(json.dumps(summary, sort_keys=True))
    else:
        typer.echo(
            f"restored member {node_id} into {data_dir}: index {meta.index} (term {meta.term},"
            f" {size(file.stat().st_size)} backup of cluster {meta.cluster_id});"
            f" new cluster {config.effective_cluster_id}"
        )
