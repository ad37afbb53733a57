"""Unit tests of the linearizability checker on hand-made histories.

Each anomaly test builds a history that a broken store could produce (stale
read, lost write, double cas, ...) and requires ILLEGAL; the matching
"legal" variants require LINEARIZABLE, so a checker that always answers one
way fails. A randomized cross-check compares the search against a brute-force
enumeration of all orders on small histories.
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Sequence

import pytest

from tests.lin.checker import Verdict, check_history, check_key
from tests.lin.model import Operation, OpKind, State, step

K = b"k"


def put(client: int, value: bytes, t0: int, t1: int | None, key: bytes = K) -> Operation:
    return Operation(client, OpKind.PUT, key, t0, t1, value=value)


def get(client: int, out: bytes | None, t0: int, t1: int, key: bytes = K) -> Operation:
    return Operation(client, OpKind.GET, key, t0, t1, output=out)


def cas(
    client: int,
    expected: bytes | None,
    new: bytes | None,
    ok: bool | None,
    t0: int,
    t1: int | None,
    key: bytes = K,
) -> Operation:
    return Operation(client, OpKind.CAS, key, t0, t1, value=new, expected=expected, output=ok)


def delete(client: int, t0: int, t1: int | None, existed: bool | None = None) -> Operation:
    return Operation(client, OpKind.DELETE, K, t0, t1, output=existed)


def verdict(ops: Sequence[Operation], **kw: object) -> Verdict:
    return check_history(ops, **kw).verdict  # type: ignore[arg-type]


# --- accepted histories ---------------------------------------------------------


def test_sequential_history_is_linearizable() -> None:
    ops = [put(1, b"a", 0, 1), get(1, b"a", 2, 3), put(2, b"b", 4, 5), get(2, b"b", 6, 7)]
    assert verdict(ops) is Verdict.LINEARIZABLE


def test_read_concurrent_with_write_may_see_either_value() -> None:
    for seen in (b"a", b"b"):
        ops = [put(1, b"a", 0, 1), put(2, b"b", 2, 10), get(3, seen, 3, 4)]
        assert verdict(ops) is Verdict.LINEARIZABLE, seen


def test_reads_may_be_ordered_against_invocation_order() -> None:
    # Two overlapping writes; reader 3 sees b then a: legal if b was linearized
    # first and a second, both inside the overlap.
    ops = [
        put(1, b"a", 0, 10),
        put(2, b"b", 0, 10),
        get(3, b"b", 1, 2),
        get(3, b"a", 3, 4),
    ]
    assert verdict(ops) is Verdict.LINEARIZABLE


def test_absent_key_reads_none_and_initial_state_is_honoured() -> None:
    assert verdict([get(1, None, 0, 1)]) is Verdict.LINEARIZABLE
    assert verdict([get(1, b"x", 0, 1)], initial={K: b"x"}) is Verdict.LINEARIZABLE
    assert verdict([get(1, None, 0, 1)], initial={K: b"x"}) is Verdict.ILLEGAL


def test_cas_success_and_failure_follow_the_state() -> None:
    ops = [
        put(1, b"a", 0, 1),
        cas(1, b"a", b"b", True, 2, 3),
        cas(2, b"a", b"c", False, 4, 5),
        get(1, b"b", 6, 7),
        cas(2, None, b"z", False, 8, 9),
        delete(1, 10, 11, existed=True),
        cas(2, None, b"z", True, 12, 13),
        get(1, b"z", 14, 15),
    ]
    assert verdict(ops) is Verdict.LINEARIZABLE


def test_concurrent_cas_one_winner() -> None:
    ops = [
        put(1, b"a", 0, 1),
        cas(2, b"a", b"x", True, 2, 10),
        cas(3, b"a", b"y", False, 2, 10),
        get(1, b"x", 11, 12),
    ]
    assert verdict(ops) is Verdict.LINEARIZABLE


def test_unknown_write_may_have_happened() -> None:
    ops = [put(1, b"a", 0, 1), put(2, b"b", 2, None), get(3, b"b", 5, 6)]
    assert verdict(ops) is Verdict.LINEARIZABLE


def test_unknown_write_may_not_have_happened() -> None:
    ops = [put(1, b"a", 0, 1), put(2, b"b", 2, None), get(3, b"a", 5, 6), get(3, b"a", 50, 60)]
    assert verdict(ops) is Verdict.LINEARIZABLE


def test_unknown_write_may_take_effect_long_after_invocation() -> None:
    ops = [put(1, b"a", 0, 1), put(2, b"b", 2, None), get(3, b"a", 5, 6), get(3, b"b", 50, 60)]
    assert verdict(ops) is Verdict.LINEARIZABLE


def test_unknown_cas_applies_only_if_it_would_have_matched() -> None:
    ops = [put(1, b"a", 0, 1), cas(2, b"a", b"b", None, 2, None), get(3, b"b", 5, 6)]
    assert verdict(ops) is Verdict.LINEARIZABLE
    ops = [put(1, b"q", 0, 1), cas(2, b"a", b"b", None, 2, None), get(3, b"b", 5, 6)]
    assert verdict(ops) is Verdict.ILLEGAL


def test_unknown_read_is_ignored() -> None:
    pending_get = Operation(1, OpKind.GET, K, 0, None, output=b"nonsense")
    assert verdict([pending_get, put(2, b"a", 1, 2)]) is Verdict.LINEARIZABLE


def test_keys_are_independent() -> None:
    ops = [
        put(1, b"a", 0, 1, key=b"x"),
        put(1, b"b", 0, 1, key=b"y"),
        get(2, b"a", 2, 3, key=b"x"),
        get(2, b"b", 2, 3, key=b"y"),
    ]
    result = check_history(ops)
    assert result.ok
    assert set(result.keys) == {b"x", b"y"}


# --- rejected histories ---------------------------------------------------------


def test_stale_read_is_rejected() -> None:
    ops = [put(1, b"a", 0, 1), put(1, b"b", 2, 3), get(2, b"a", 4, 5)]
    result = check_history(ops)
    assert result.verdict is Verdict.ILLEGAL
    key_result = result.keys[K]
    assert key_result.blocked is not None and key_result.blocked.kind is OpKind.GET
    assert "cannot linearize" in result.explain()


def test_stale_read_after_a_fresh_read_is_rejected() -> None:
    # Read b, then (strictly later) read a again: b's write cannot be undone.
    ops = [put(1, b"a", 0, 1), put(2, b"b", 2, 20), get(3, b"b", 3, 4), get(3, b"a", 5, 6)]
    assert verdict(ops) is Verdict.ILLEGAL


def test_lost_acknowledged_write_is_rejected() -> None:
    ops = [put(1, b"a", 0, 1), get(2, None, 2, 3)]
    assert verdict(ops) is Verdict.ILLEGAL


def test_read_of_a_value_never_written_is_rejected() -> None:
    ops = [put(1, b"a", 0, 1), get(2, b"ghost", 2, 3)]
    assert verdict(ops) is Verdict.ILLEGAL


def test_unknown_write_cannot_take_effect_before_its_invocation() -> None:
    ops = [get(1, b"b", 0, 1), put(2, b"b", 2, None)]
    assert verdict(ops) is Verdict.ILLEGAL


def test_unknown_write_cannot_be_undone() -> None:
    ops = [put(1, b"a", 0, 1), put(2, b"b", 2, None), get(3, b"b", 5, 6), get(3, b"a", 7, 8)]
    assert verdict(ops) is Verdict.ILLEGAL


def test_two_cas_from_the_same_expected_value_cannot_both_win() -> None:
    sequential = [
        put(1, b"a", 0, 1),
        cas(2, b"a", b"x", True, 2, 3),
        cas(3, b"a", b"y", True, 4, 5),
    ]
    concurrent = [
        put(1, b"a", 0, 1),
        cas(2, b"a", b"x", True, 2, 10),
        cas(3, b"a", b"y", True, 2, 10),
    ]
    assert verdict(sequential) is Verdict.ILLEGAL
    assert verdict(concurrent) is Verdict.ILLEGAL


def test_cas_that_failed_although_it_matched_is_rejected() -> None:
    ops = [put(1, b"a", 0, 1), cas(2, b"a", b"b", False, 2, 3)]
    assert verdict(ops) is Verdict.ILLEGAL


def test_cas_on_absent_key_that_succeeded_although_present_is_rejected() -> None:
    ops = [put(1, b"a", 0, 1), cas(2, None, b"b", True, 2, 3)]
    assert verdict(ops) is Verdict.ILLEGAL


def test_delete_reporting_wrong_existence_is_rejected() -> None:
    assert verdict([delete(1, 0, 1, existed=True)]) is Verdict.ILLEGAL
    assert verdict([put(1, b"a", 0, 1), delete(1, 2, 3, existed=False)]) is Verdict.ILLEGAL
    assert verdict([put(1, b"a", 0, 1), delete(1, 2, 3), get(1, b"a", 4, 5)]) is Verdict.ILLEGAL


def test_one_bad_key_makes_the_history_illegal() -> None:
    ops = [
        put(1, b"a", 0, 1, key=b"good"),
        put(1, b"a", 0, 1, key=b"bad"),
        get(2, None, 2, 3, key=b"bad"),
    ]
    result = check_history(ops)
    assert result.verdict is Verdict.ILLEGAL
    assert result.keys[b"good"].verdict is Verdict.LINEARIZABLE
    assert result.keys[b"bad"].verdict is Verdict.ILLEGAL


# --- budget, scale, validation --------------------------------------------------


def _wide_history(writers: int, rounds: int) -> list[Operation]:
    """Many overlapping unknown writes and reads that pin a late value."""
    ops: list[Operation] = []
    t = 0
    for r in range(rounds):
        for w in range(writers):
            ops.append(put(w, f"v{r}-{w}".encode(), t, None))
        t += 1
    # A read that no order explains forces the whole space to be explored.
    ops.append(get(99, b"never-written", t + 1, t + 2))
    return ops


def test_step_budget_yields_unknown() -> None:
    result = check_history(_wide_history(writers=6, rounds=6), max_steps=2_000)
    assert result.verdict is Verdict.UNKNOWN
    assert result.keys[K].steps > 2_000


def test_large_concurrent_linearizable_history_is_checked_quickly() -> None:
    # 8 clients, 400 ops each, simulated against a real register with random
    # linearization points inside each interval (so the answer is known).
    ops = _simulated(random.Random(7), clients=8, per_client=400, pending_rate=0.02)
    result = check_history(ops, timeout=30)
    assert result.verdict is Verdict.LINEARIZABLE, result.explain()


def test_wrong_types_are_rejected() -> None:
    with pytest.raises(TypeError, match="key"):
        Operation(1, OpKind.PUT, "k", 0, 1, value=b"a")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="output"):
        Operation(1, OpKind.CAS, K, 0, 1, value=b"a", output=None)
    with pytest.raises(ValueError, match="before invoke"):
        Operation(1, OpKind.GET, K, 5, 1)
    with pytest.raises(TypeError, match="ops"):
        check_history(["not an op"])  # type: ignore[list-item]
    with pytest.raises(ValueError, match="key"):
        check_key(b"other", [get(1, None, 0, 1)])


# --- randomized cross-check against brute force ---------------------------------


def _brute_force(ops: Sequence[Operation], initial: State = None) -> bool:
    """Try every subset of unknown writes and every order consistent with real time."""
    ops = [op for op in ops if not (op.kind is OpKind.GET and op.pending)]
    done = [op for op in ops if not op.pending]
    maybe = [op for op in ops if op.pending]

    def precedes(a: Operation, b: Operation) -> bool:
        return a.complete is not None and a.complete < b.invoke

    for n in range(len(maybe) + 1):
        for chosen in itertools.combinations(maybe, n):
            for order in itertools.permutations([*done, *chosen]):
                if any(
                    precedes(order[j], order[i])
                    for i in range(len(order))
                    for j in range(i + 1, len(order))
                ):
                    continue
                state, legal = initial, True
                for op in order:
                    legal, state = step(state, op)
                    if not legal:
                        break
                if legal:
                    return True
    return False


def _simulated(
    rng: random.Random, clients: int, per_client: int, pending_rate: float
) -> list[Operation]:
    """Operations of ``clients`` sequential clients against one true register."""
    planned: list[tuple[float, int, int, int, OpKind, bytes | None, bytes | None]] = []
    for c in range(clients):
        t = rng.randint(0, 3)
        for i in range(per_client):
            length = rng.randint(1, 6)
            kind = rng.choice([OpKind.PUT, OpKind.GET, OpKind.GET, OpKind.CAS, OpKind.DELETE])
            value = f"{c}.{i}".encode() if kind in (OpKind.PUT, OpKind.CAS) else None
            expected = rng.choice([None, f"{rng.randrange(clients)}.{max(0, i - 1)}".encode()])
            point = t + rng.random() * length  # the true linearization point
            planned.append((point, c, t, t + length, kind, value, expected))
            t += length + rng.randint(1, 3)
    state: State = None
    ops: list[Operation] = []
    for _point, c, t0, t1, kind, value, expected in sorted(planned):
        probe = Operation(c, kind, K, t0, None, value=value, expected=expected)
        _, new_state = step(state, probe)
        output: bytes | bool | None = None
        if kind is OpKind.GET:
            output = state
        elif kind is OpKind.CAS:
            output = state == expected
        elif kind is OpKind.DELETE:
            output = state is not None
        state = new_state
        pending = kind is not OpKind.GET and rng.random() < pending_rate
        ops.append(
            Operation(
                c,
                kind,
                K,
                t0,
                None if pending else t1,
                value=value,
                expected=expected,
                output=None if pending else output,
            )
        )
    return ops


def _mutate(rng: random.Random, ops: list[Operation]) -> list[Operation]:
    """Corrupt one completed output (may or may not make the history illegal)."""
    idx = [i for i, op in enumerate(ops) if not op.pending and op.kind in (OpKind.GET, OpKind.CAS)]
    if not idx:
        return ops
    i = rng.choice(idx)
    op = ops[i]
    if op.kind is OpKind.GET:
        candidates = [o.value for o in ops if o.value is not None] + [None]
        new_out: bytes | bool | None = rng.choice(candidates)
    else:
        new_out = not op.output
    ops = list(ops)
    ops[i] = Operation(
        op.client, op.kind, op.key, op.invoke, op.complete, op.value, op.expected, new_out
    )
    return ops


@pytest.mark.parametrize("seed", range(6))
def test_agrees_with_brute_force_on_small_random_histories(seed: int) -> None:
    rng = random.Random(seed)
    seen = {Verdict.LINEARIZABLE: 0, Verdict.ILLEGAL: 0}
    for _ in range(60):
        ops = _simulated(rng, clients=rng.randint(2, 3), per_client=2, pending_rate=0.25)
        if rng.random() < 0.6:
            ops = _mutate(rng, ops)
        expected = _brute_force(ops)
        got = check_history(ops).verdict
        assert got is (Verdict.LINEARIZABLE if expected else Verdict.ILLEGAL), [
            o.describe() for o in ops
        ]
        seen[got] += 1
    # The generator must exercise both answers, or the test proves little.
    assert seen[Verdict.LINEARIZABLE] > 5 and seen[Verdict.ILLEGAL] > 5, seen
