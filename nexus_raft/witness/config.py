"""Building the :class:`~nexus_raft.consensus.node.config.NodeConfig` of a witness.

A witness is an ordinary member of the initial ``peers`` whose id is listed in
``witnesses``; every member of the cluster must be started with the same
``peers`` and the same set of witnesses, because each one writes the initial
configuration entries itself (see ``RaftNode._bootstrap``) and those entries
must agree byte for byte. :func:`witness_config` adds the witness's own id to
``witnesses`` so that ``nexus-witness --peers ...`` needs no ``--witness`` flag
for itself.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from nexus_raft.consensus.node.config import NodeConfig
from nexus_raft.errors import ConfigError

__all__ = ["check_witness_config", "witness_config"]

def witness_config(
    *,
    id: int,
    listen: str,
    peers: Mapping[int, str],
    data_dir: str | Path,
    witnesses: Iterable[int] = (),
    cluster_id: str | None = None,
    **options: Any,
) -> NodeConfig:
    """The config of witness ``id``: ``witnesses`` plus ``id`` itself.

    ``options`` are the other :class:`NodeConfig` fields (timing, TLS,
    ``join=True`` for a witness added at run time with ``add_member(...,
    role="witness")``: it then waits for the leader instead of bootstrapping).
    Automatic compaction is safe on a witness: the node never compacts a
    witness's log past its payload floor, so payloads it holds for a lagging
    full member stay until every full member has them.
    Wrong types raise ``TypeError`` naming the argument; a witness that is not
    in ``peers`` raises :class:`~nexus_raft.errors.ConfigError`.
    """
    if isinstance(id, bool) or not isinstance(id, int):
        raise TypeError(f"id must be an int, not {type(id).__name__}")
    if not isinstance(peers, Mapping):
        raise TypeError(f"peers must be a dict, not {type(peers).__name__}")
    if isinstance(witnesses, (str, bytes)) or not isinstance(witnesses, Iterable):
        raise TypeError(f"witnesses must be an iterable of ints, not {type(witnesses).__name__}")
    others = frozenset(witnesses)
    if id not in peers and not options.get("join", False):
        raise ConfigError(f"the witness's id {id} must be one of the peers {sorted(peers)} "
                          "(or join=True for a witness added to a running cluster)")
    config = NodeConfig(
        id=id, listen=listen, peers=dict(peers), data_dir=data_dir,
        witnesses=others | {id}, cluster_id=cluster_id, **options,
    )  # fmt: skip
    return config


def check_witness_config(config: NodeConfig) -> NodeConfig:
    """``config`` if it describes a witness; ``TypeError`` / ``ConfigError`` otherwise."""
    if not isinstance(config, NodeConfig):
        raise TypeError(f"config must be a NodeConfig, not {type(config).__name__}")
    if not config.is_witness:
        raise ConfigError(
            f"node {config.id} is not listed in config.witnesses {sorted(config.witnesses)}: "
            "use witness_config() or add it"
        )
    return config
