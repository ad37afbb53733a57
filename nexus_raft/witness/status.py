"""``WitnessStatus``: the witness's own view, for status lines and ``--json``.

It is the node's :class:`~nexus_raft.consensus.node.status.NodeStatus` narrowed
to what a witness has (no applied index, no store revision) plus what the
witness costs: its payload floor, how many entries above the floor may still
hold payloads, and the measured disk and memory footprint.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from nexus_raft.consensus.node.status import MemberStatus, NodeStatus

__all__ = ["WitnessStatus"]


def _size(n: int | None) -> str:
    if n is None:
        return "?"
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{n} B"  # pragma: no cover - the loop always returns


@dataclass(frozen=True, slots=True)
class WitnessStatus:
    """One witness's view of the cluster and its own footprint.

    ``role`` is the Raft role (``follower``; ``leader`` only while it hands
    newer entries to a lagging full voter; ``candidate`` while it campaigns
    for that). ``payload_floor``: the witness holds no payload of any entry at
    or below it; ``payload_window`` = ``last_index - payload_floor`` bounds how
    many entries may still carry one (0 with healthy full voters once the
    leader's next message arrives). ``disk_bytes`` is the size of the data
    directory, ``rss_bytes`` the process's resident memory (None if unknown).
    """

    id: int
    cluster_id: str
    listen: str
    role: str
    term: int
    leader_id: int | None
    leader_address: str | None
    commit: int
    last_index: int
    payload_floor: int
    disk_bytes: int
    rss_bytes: int | None
    members: tuple[MemberStatus, ...] = field(default_factory=tuple)

    @property
    def payload_window(self) -> int:
        """Entries above the payload floor (an upper bound on payloads held)."""
        return max(0, self.last_index - self.payload_floor)

    @classmethod
    def from_node(
        cls,
        st: NodeStatus,
        *,
        cluster_id: str,
        listen: str,
        disk_bytes: int,
        rss_bytes: int | None,
    ) -> WitnessStatus:
        """Build from the underlying node's status and measured footprint."""
        floor = 0
        for m in st.members:
            if m.id == st.id:
                floor = m.payload_floor
        lid = st.leader_id or None
        return cls(
            id=st.id, cluster_id=cluster_id, listen=listen, role=str(st.role), term=st.term,
            leader_id=lid, leader_address=st.leader_address if lid else None,
            commit=st.commit, last_index=st.last_index, payload_floor=floor,
            disk_bytes=disk_bytes, rss_bytes=rss_bytes, members=tuple(st.members),
        )  # fmt: skip

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (members as a list of dicts; ``payload_window`` included)."""
        data = asdict(self)
        data["members"] = [asdict(m) for m in self.members]
        data["payload_window"] = self.payload_window
        return data

    def describe(self) -> str:
        """One human line, e.g. ``witness 3 follower term 2 leader 1 (127.0.0.1:7001) ...``."""
        if self.leader_id is None:
            leader = "no leader"
        elif self.leader_id == self.id:
            leader = "leading (handing over to a full member)"
        else:
            leader = f"leader {self.leader_id} ({self.leader_address or '?'})"
        return (
            f"witness {self.id} {self.role} term {self.term} {leader}; "
            f"commit {self.commit} last {self.last_index} payload-floor {self.payload_floor}; "
            f"disk {_size(self.disk_bytes)} rss {_size(self.rss_bytes)}"
        )
