"""nexus_raft.consensus.node: RaftNode, the asyncio driver of one Raft member.

``node`` (the public :class:`RaftNode`), ``config`` (:class:`NodeConfig`),
``driver`` (ticks the core, persists each Ready, sends, advances), ``apply``
(the apply task), ``propose``, ``peers``/``send`` (outgoing peer traffic),
``server`` (incoming peer traffic), ``snapshot`` (streaming and staging),
``boot`` (bootstrap and recovery), ``status`` and ``wire`` (the one place
where core messages meet protobuf).

May import: :mod:`nexus_raft.consensus.core`, :mod:`nexus_raft.consensus.log`,
:mod:`nexus_raft.consensus.state_machine`, :mod:`nexus_raft.storage`,
:mod:`nexus_raft.transport` and :mod:`nexus_raft.errors`; never an
application package (``kv``, ``witness``, ``cli``, ``demo``).
"""

from nexus_raft.consensus.node.config import NodeConfig
from nexus_raft.consensus.node.node import RaftNode
from nexus_raft.consensus.node.status import MemberStatus, NodeStatus

__all__ = ["MemberStatus", "NodeConfig", "NodeStatus", "RaftNode"]
