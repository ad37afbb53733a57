"""A tiny interpreter for etcd-style scenario scripts (``testdata/*.txt``).

File format: blocks of ``command args`` / ``----`` / expected output, separated
by blank lines; ``#`` starts a comment line. Set ``NEXUS_REWRITE=1`` to
rewrite the expected output from the actual one (then review the diff!).

Commands (ids are node ids; ``k=v`` options follow positional arguments):

    add-nodes N voters=(1,2,3) [learners=(4)] [witnesses=(3)] [pre_vote=false]
              [check_quorum=false] [election=10] [heartbeat=1] [inflight=256]
              [max_entries=4096] [max_bytes=1048576]
    campaign ID | tick ID [ID...] [n=1] [stabilize=true] | propose ID DATA | read-index ID CTX
    add-member ID voter|learner|witness NODE | remove-member ID NODE
    transfer-leader ID TARGET | report-unreachable ID PEER | report-snapshot ID PEER ok|fail
    process-ready ID [ID...] | deliver-msgs [ID...] [drop=(ID,...)]
    stabilize [ID...] [quiet]  | partition 1 | 2 3 | cut FROM TO | heal
    status ID | log ID | raft-state | compact ID INDEX | restart ID | drop-msgs
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from nexus_raft.consensus.core import ConfChange, ConfChangeType, ConfState, Outcome, Rejected
from tests.consensus.core.harness import Network, fmt_entries, fmt_msg, fmt_ready

_OPT = re.compile(r"^(\w+)=(.*)$")


@dataclass
class Block:
    """One command with its expected output."""

    line: int
    command: str
    expected: str


def parse(text: str) -> list[Block]:
    """Split a script into blocks."""
    blocks: list[Block] = []
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        line = lines[i].strip()
        if not line or line.startswith("#"):
            i += 1
            continue
        start = i + 1
        if i + 1 >= len(lines) or lines[i + 1].strip() != "----":
            raise ValueError(f"line {start}: expected '----' after the command")
        i += 2
        out: list[str] = []
        while i < len(lines) and lines[i].strip():
            out.append(lines[i].rstrip())
            i += 1
        blocks.append(Block(start, line, "\n".join(out)))
    return blocks


def render(blocks: list[Block], outputs: list[str], original: str) -> str:
    """The script with ``outputs`` as expected output (comments kept)."""
    lines = original.splitlines()
    result: list[str] = []
    i = 0
    bi = 0
    while i < len(lines):
        line = lines[i].strip()
        if not line or line.startswith("#"):
            result.append(lines[i].rstrip())
            i += 1
            continue
        result.append(line)
        result.append("----")
        result.append(outputs[bi])
        bi += 1
        i += 2
        while i < len(lines) and lines[i].strip():
            i += 1
    return "\n".join(result).rstrip() + "\n"


def _ids(value: str) -> list[int]:
    value = value.strip("()")
    return [int(x) for x in value.split(",") if x]


def _fmt_outcome(o: Outcome) -> str:
    s = repr(o).replace("<RejectReason.", "").replace(": '", "('").replace("'>", "')")
    if isinstance(o, Rejected) and o.detail:
        s += f" detail: {o.detail}"
    return s


class Interpreter:
    """Runs scenario commands against a :class:`Network`."""

    def __init__(self) -> None:
        self.net = Network()

    def run(self, command: str) -> str:
        words = command.split()
        name, args = words[0], words[1:]
        pos: list[str] = []
        opts: dict[str, str] = {}
        for a in args:
            m = _OPT.match(a)
            if m:
                opts[m.group(1)] = m.group(2)
            else:
                pos.append(a)
        handler = getattr(self, "cmd_" + name.replace("-", "_"), None)
        if handler is None:
            raise ValueError(f"unknown command {name!r}")
        lines: list[str] = handler(pos, opts)
        return "\n".join(lines) if lines else "ok"

    # --- setup ------------------------------------------------------------------------

    def cmd_add_nodes(self, pos: list[str], opts: dict[str, str]) -> list[str]:
        n = int(pos[0])
        voters = frozenset(_ids(opts.get("voters", "")))
        learners = frozenset(_ids(opts.get("learners", "")))
        witnesses = frozenset(_ids(opts.get("witnesses", "")))
        cs = ConfState(voters, learners, witnesses)
        cfg: dict[str, int | bool] = {}
        for key, field in (
            ("election", "election_tick"),
            ("heartbeat", "heartbeat_tick"),
            ("inflight", "max_inflight_msgs"),
            ("max_entries", "max_entries_per_msg"),
            ("max_bytes", "max_size_per_msg"),
        ):
            if key in opts:
                cfg[field] = int(opts[key])
        for key in ("pre_vote", "check_quorum"):
            if key in opts:
                cfg[key] = opts[key] == "true"
        start = len(self.net.nodes) + 1
        for nid in range(start, start + n):
            # Every node boots with the initial configuration; one outside it joins
            # once the leader's log (or a snapshot) adds it.
            self.net.add_node(nid, cs, **cfg)
        return []

    # --- events -----------------------------------------------------------------------

    def cmd_campaign(self, pos: list[str], opts: dict[str, str]) -> list[str]:
        self.net.raft(int(pos[0])).campaign()
        return []

    def cmd_tick(self, pos: list[str], opts: dict[str, str]) -> list[str]:
        n = int(opts.get("n", "1"))
        settle = opts.get("stabilize") == "true"
        for _ in range(n):
            for nid in pos:
                self.net.raft(int(nid)).tick()
            if settle:
                self.net.stabilize()
        return []

    def cmd_propose(self, pos: list[str], opts: dict[str, str]) -> list[str]:
        return [_fmt_outcome(self.net.raft(int(pos[0])).propose(pos[1].encode()))]

    def cmd_read_index(self, pos: list[str], opts: dict[str, str]) -> list[str]:
        return [_fmt_outcome(self.net.raft(int(pos[0])).read_index(pos[1].encode()))]

    def cmd_add_member(self, pos: list[str], opts: dict[str, str]) -> list[str]:
        kind = {
            "voter": ConfChangeType.ADD_VOTER,
            "learner": ConfChangeType.ADD_LEARNER,
            "witness": ConfChangeType.ADD_WITNESS,
        }[pos[1]]
        cc = ConfChange(kind, int(pos[2]))
        return [_fmt_outcome(self.net.raft(int(pos[0])).propose_conf_change(cc))]

    def cmd_remove_member(self, pos: list[str], opts: dict[str, str]) -> list[str]:
        cc = ConfChange(ConfChangeType.REMOVE, int(pos[1]))
        return [_fmt_outcome(self.net.raft(int(pos[0])).propose_conf_change(cc))]

    def cmd_transfer_leader(self, pos: list[str], opts: dict[str, str]) -> list[str]:
        return [_fmt_outcome(self.net.raft(int(pos[0])).transfer_leadership(int(pos[1])))]

    def cmd_report_unreachable(self, pos: list[str], opts: dict[str, str]) -> list[str]:
        self.net.raft(int(pos[0])).report_unreachable(int(pos[1]))
        return []

    def cmd_report_snapshot(self, pos: list[str], opts: dict[str, str]) -> list[str]:
        self.net.raft(int(pos[0])).report_snapshot(int(pos[1]), pos[2] == "ok")
        return []

    def cmd_compact(self, pos: list[str], opts: dict[str, str]) -> list[str]:
        box = self.net.nodes[int(pos[0])]
        meta = box.storage.create_snapshot(int(pos[1]))
        return [f"snapshot {meta.index}/{meta.term} voters={sorted(meta.conf_state.voters)}"]

    def cmd_restart(self, pos: list[str], opts: dict[str, str]) -> list[str]:
        self.net.restart(int(pos[0]))
        return []

    # --- network ------------------------------------------------------------------------

    def cmd_process_ready(self, pos: list[str], opts: dict[str, str]) -> list[str]:
        out: list[str] = []
        for nid in pos:
            rd = self.net.process_ready(int(nid))
            if rd is not None:
                out.extend(fmt_ready(int(nid), rd))
        return out

    def cmd_deliver_msgs(self, pos: list[str], opts: dict[str, str]) -> list[str]:
        to = [int(x) for x in pos] if pos else None
        drop = _ids(opts.get("drop", ""))
        if to is None and drop:
            to = []  # only drop
        return self.net.deliver(to, drop)

    def cmd_drop_msgs(self, pos: list[str], opts: dict[str, str]) -> list[str]:
        out = [f"  dropped {fmt_msg(m)}" for m in self.net.queue]
        self.net.queue = []
        return out

    def cmd_stabilize(self, pos: list[str], opts: dict[str, str]) -> list[str]:
        quiet = "quiet" in pos
        ids = [int(x) for x in pos if x != "quiet"] or None
        out = self.net.stabilize(ids)
        return [] if quiet else out

    def cmd_partition(self, pos: list[str], opts: dict[str, str]) -> list[str]:
        groups: list[set[int]] = [set()]
        for w in pos:
            if w == "|":
                groups.append(set())
            else:
                groups[-1].add(int(w))
        self.net.groups = groups
        return []

    def cmd_cut(self, pos: list[str], opts: dict[str, str]) -> list[str]:
        self.net.cut.add((int(pos[0]), int(pos[1])))
        return []

    def cmd_heal(self, pos: list[str], opts: dict[str, str]) -> list[str]:
        self.net.groups = None
        self.net.cut.clear()
        return []

    # --- inspection ---------------------------------------------------------------------

    def cmd_status(self, pos: list[str], opts: dict[str, str]) -> list[str]:
        st = self.net.raft(int(pos[0])).status()
        cs = st.conf_state
        out = [
            f"{st.id}: {st.role.value} term={st.term} vote={st.vote} leader={st.leader_id} "
            f"commit={st.commit} applied={st.applied} last={st.last_index}",
            f"  voters={sorted(cs.voters)} learners={sorted(cs.learners)} "
            f"witnesses={sorted(cs.witnesses)} floor={st.payload_floor} transferee={st.transferee}",
        ]
        for nid, p in st.progress.items():
            line = f"  {nid}: match={p.match} next={p.next} {p.state.value} {p.kind.value}"
            if p.payload_match:
                line += f" payload={p.payload_match}"
            out.append(line)
        return out

    def cmd_log(self, pos: list[str], opts: dict[str, str]) -> list[str]:
        box = self.net.nodes[int(pos[0])]
        st = box.storage
        ents = st.entries(st.first_index(), st.last_index() + 1)
        return [
            f"stable: {fmt_entries(ents)} (snapshot {st.snapshot().index})",
            f"applied: {fmt_entries(box.applied)}",
        ]

    def cmd_raft_state(self, pos: list[str], opts: dict[str, str]) -> list[str]:
        out = []
        for nid, box in sorted(self.net.nodes.items()):
            r = box.raft
            out.append(f"{nid}: {r.role.value} term={r.term} leader={r.leader_id}")
        return out

    def cmd_reads(self, pos: list[str], opts: dict[str, str]) -> list[str]:
        box = self.net.nodes[int(pos[0])]
        out = [f"read_state index={rs.index} ctx={rs.context.decode()}" for rs in box.read_states]
        out += [f"dropped ctx={c.decode()}" for c in box.dropped_reads]
        return out


def run_file(path: Path) -> tuple[str, str]:
    """Run one script; returns (expected text, actual text)."""
    text = path.read_text()
    blocks = parse(text)
    interp = Interpreter()
    outputs: list[str] = []
    for b in blocks:
        try:
            outputs.append(interp.run(b.command))
        except Exception as exc:
            raise AssertionError(f"{path.name}:{b.line}: {b.command}: {exc!r}") from exc
    actual = render(blocks, outputs, text)
    if os.environ.get("NEXUS_REWRITE") == "1":
        path.write_text(actual)
        return actual, actual
    return text, actual
