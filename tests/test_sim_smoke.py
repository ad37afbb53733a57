"""The cluster simulator: its network model, its determinism, and a few hundred seeds.

The network tests pin the model the simulator's results rest on (loss,
duplication, delay, reordering, one-way cuts, heal). The smoke run executes a
few hundred seeds of the real core and demands zero violations; ``make sim``
runs thousands.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Collection, Mapping
from dataclasses import dataclass

import pytest

from nexus_raft.consensus.core import election, replication
from nexus_raft.consensus.core.quorum import VoteResult
from tests.sim.__main__ import main, report
from tests.sim.network import Network
from tests.sim.params import SCENARIO_LONG, draw
from tests.sim.runner import run_seed


@dataclass(frozen=True)
class Msg:
    frm: int
    to: int
    n: int = 0


def drain(net: Network, upto: int) -> list[Msg]:
    out: list[Msg] = []
    for t in range(upto + 1):
        got, _ = net.pop_due(t)
        out.extend(got)
    return out


def test_network_delivers_everything_without_faults_in_send_order() -> None:
    net = Network(random.Random(1), reorder=0.0)
    for i in range(50):
        net.send(Msg(1, 2, i), now=0)
    got, lost = net.pop_due(0)
    assert [m.n for m in got] == list(range(50))
    assert lost == [] and net.in_flight() == 0


def test_network_reorders_same_tick_messages() -> None:
    net = Network(random.Random(2), reorder=1.0)
    for i in range(50):
        net.send(Msg(1, 2, i), now=0)
    got, _ = net.pop_due(0)
    assert sorted(m.n for m in got) == list(range(50))
    assert [m.n for m in got] != list(range(50))


def test_network_loss_rate_is_about_right() -> None:
    net = Network(random.Random(3), loss=0.2)
    sent = sum(net.send(Msg(1, 2, i), 0) for i in range(5000))
    assert 0.75 * 5000 < sent < 0.85 * 5000
    assert net.dropped == 5000 - sent
    assert len(drain(net, 0)) == sent


def test_network_duplicates() -> None:
    net = Network(random.Random(4), dup=0.5)
    copies = [net.send(Msg(1, 2, i), 0) for i in range(2000)]
    assert set(copies) == {1, 2}
    got = drain(net, 0)
    assert len(got) == sum(copies)
    assert 0.4 * 2000 < net.duplicated < 0.6 * 2000


def test_network_delay_bounds_and_reorders_across_ticks() -> None:
    net = Network(random.Random(5), max_delay=3, reorder=0.0)
    for i in range(200):
        net.send(Msg(1, 2, i), now=10)
    assert not net.has_due(9)
    seen: list[int] = []
    per_tick = []
    for t in range(10, 14):
        got, _ = net.pop_due(t)
        per_tick.append(len(got))
        seen.extend(m.n for m in got)
    assert sorted(seen) == list(range(200))
    assert seen != list(range(200))  # later sends overtook earlier ones
    assert all(k > 0 for k in per_tick)
    assert net.in_flight() == 0


def test_network_one_way_cut_is_asymmetric_and_heals() -> None:
    net = Network(random.Random(6))
    net.cut_link(1, 2)
    assert net.send(Msg(1, 2), 0) == 0
    assert net.send(Msg(2, 1), 0) == 1
    assert net.send(Msg(1, 3), 0) == 1
    net.heal()
    assert net.send(Msg(1, 2), 0) == 1
    assert sorted((m.frm, m.to) for m in drain(net, 0)) == [(1, 2), (1, 3), (2, 1)]


def test_network_partition_cuts_between_groups_only() -> None:
    net = Network(random.Random(7))
    net.partition([[1, 2], [3]])
    assert net.send(Msg(1, 2), 0) == 1
    assert net.send(Msg(2, 3), 0) == 0
    assert net.send(Msg(3, 1), 0) == 0


def test_network_isolate_inbound_only() -> None:
    net = Network(random.Random(8))
    net.isolate(2, [1, 2, 3], inbound=True, outbound=False)
    assert net.send(Msg(1, 2), 0) == 0
    assert net.send(Msg(2, 1), 0) == 1


def test_network_cut_while_in_flight_drops_at_delivery() -> None:
    net = Network(random.Random(9), max_delay=2)
    net.send(Msg(1, 2), 0)
    net.cut_link(1, 2)
    got = drain(net, 5)
    assert got == []
    assert net.dropped == 1


def test_network_is_deterministic_per_seed() -> None:
    def run(seed: int) -> list[int]:
        net = Network(random.Random(seed), loss=0.1, dup=0.1, max_delay=2)
        for i in range(300):
            net.send(Msg(1, 2, i), i // 10)
        return [m.n for m in drain(net, 40)]

    assert run(11) == run(11)
    assert run(11) != run(12)


def test_network_rejects_bad_arguments() -> None:
    with pytest.raises(TypeError, match="rng"):
        Network(1)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        Network(random.Random(1)).set_faults(loss=1.5, dup=0.0, max_delay=0)
    with pytest.raises(ValueError, match="reorder"):
        Network(random.Random(1), reorder=2.0)


def test_network_partial_reorder_keeps_most_in_order() -> None:
    net = Network(random.Random(10), reorder=0.1)
    for i in range(1000):
        net.send(Msg(1, 2, i), now=0)
    got = [m.n for m in net.pop_due(0)[0]]
    assert sorted(got) == list(range(1000))
    in_order = [n for n in got[:850]]
    assert in_order == sorted(in_order)  # the FIFO part keeps send order
    assert got != list(range(1000))


# --- the simulator on the real core ---------------------------------------------------

def _short(seeds: range) -> list[int]:
    """The seeds of ``seeds`` that are not long runs (``make sim`` runs those)."""
    return [s for s in seeds if draw(s, random.Random(s)).scenario != SCENARIO_LONG]


SMOKE_SEEDS = _short(range(0, 200))


def test_sim_smoke_seeds_have_no_violation() -> None:
    bad = [report(r) for r in map(run_seed, SMOKE_SEEDS) if r.violation is not None]
    assert not bad, f"{len(bad)} violating seed(s); first:\n{bad[0]}"


def test_sim_same_seed_same_run() -> None:
    a, b = run_seed(7), run_seed(7)
    assert list(a.trace.events) == list(b.trace.events)
    assert (a.ticks, a.commit, a.messages, a.stats) == (b.ticks, b.commit, b.messages, b.stats)
    assert list(run_seed(8).trace.events) != list(a.trace.events)


def test_sim_seeds_cover_the_required_cases() -> None:
    total: Counter[str] = Counter()
    for seed in _short(range(0, 60)):
        total.update(run_seed(seed).stats)
    for what in (
        "crash", "crash unpersisted", "restart", "partition", "one-way cut", "election",
        "snapshot taken", "snapshot installed", "read served", "transfer requested",
        "committed ADD_VOTER", "committed ADD_LEARNER", "committed ADD_WITNESS",
        "committed REMOVE", "witness floor", "witness led", "messages duplicated",
        "messages dropped", "liveness checked", "stall case: witness led and handed over",
    ):
        assert total[what] > 0, f"no seed exercised {what!r}: {dict(total)}"


def _first_violation(seeds: range) -> str:
    for seed in seeds:
        res = run_seed(seed)
        if res.violation is not None:
            return res.violation.invariant
    return ""


def test_sim_catches_a_core_that_commits_without_a_quorum(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Commit as soon as the leader itself has the entry: a minority commit.
    def leader_only(voters: Collection[int], match: Mapping[int, int]) -> int:
        return max((match.get(v, 0) for v in voters), default=0)

    monkeypatch.setattr(replication, "committed_index", leader_only)
    monkeypatch.setattr(replication.Replication, "_payload_cap", lambda self: None)
    assert _first_violation(range(0, 40)) != ""


def test_sim_catches_a_core_that_wins_elections_with_one_vote(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def one_vote_wins(voters: Collection[int], votes: Mapping[int, bool]) -> VoteResult:
        return VoteResult.WON if any(votes.get(v) for v in voters) else VoteResult.PENDING

    monkeypatch.setattr(election, "vote_result", one_vote_wins)
    assert _first_violation(range(0, 40)) in {
        "election safety", "log matching", "leader completeness", "state machine safety",
        "leader append-only", "payload copies",
    }


def test_cli_runs_seeds_and_prints_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["--seeds", "3", "--start", "100", "--jobs", "1"])
    out = capsys.readouterr()
    assert out.out == f"sim: 3 seeds, {code} violations\n"
    assert "coverage:" in out.err


def test_cli_bad_arguments_exit_2_with_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    for argv in (["--seeds", "-1"], ["--trace"], ["--seed", "1", "--seeds", "2"], ["--bogus"]):
        with pytest.raises(SystemExit) as exc:
            main(argv)
        assert exc.value.code == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and err.startswith("tests.sim: ")


def test_cli_trace_replays_one_seed(capsys: pytest.CaptureFixture[str]) -> None:
    main(["--seed", "5", "--trace"])
    out = capsys.readouterr()
    assert out.out.count("\n") == 1 and out.out.startswith("sim: 1 seeds, ")
    assert "deliver" in out.err and "params" in out.err


def test_cli_fails_when_a_coverage_row_was_never_reached(
    capsys: pytest.CaptureFixture[str],
) -> None:
    start = _short(range(0, 50))[0]
    code = main(["--seeds", "1", "--start", str(start), "--jobs", "1", "--require-coverage"])
    err = capsys.readouterr().err
    assert code == 1
    assert "MISSING" in err and "situation(s) never reached" in err
