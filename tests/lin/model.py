"""Operations and the sequential model of one key: a register that may be absent.

An :class:`Operation` is one client call with its invocation and completion
times. ``complete is None`` means the outcome is unknown (the answer was lost,
the client gave up, the process was killed): such a write may or may not have
taken effect, at any moment after its invocation.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

#: The state of one key: its value, or None when the key is absent.
State = bytes | None


class OpKind(enum.Enum):
    """The register operations the checker understands."""

    PUT = "put"
    GET = "get"
    CAS = "cas"
    DELETE = "delete"


@dataclass(frozen=True, slots=True)
class Operation:
    """One recorded call on one key.

    Fields by kind:

    - ``PUT``: ``value`` is written; ``output`` is ignored.
    - ``GET``: ``output`` is the value read (``None``: absent).
    - ``CAS``: if the key holds ``expected`` (``None``: absent) it becomes
      ``value`` (``None``: deleted); ``output`` is ``True``/``False`` for
      swapped/not swapped.
    - ``DELETE``: the key becomes absent; ``output`` is ``True``/``False`` when
      the client reported whether the key existed, ``None`` when it did not.

    ``invoke``/``complete`` are timestamps from one monotonic clock (any unit);
    ``complete is None`` marks an operation whose outcome is unknown, in which
    case ``output`` is ignored.
    """

    client: int
    kind: OpKind
    key: bytes
    invoke: int
    complete: int | None
    value: bytes | None = None
    expected: bytes | None = None
    output: bytes | bool | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.client, int):
            raise TypeError(f"client must be int, not {type(self.client).__name__}")
        if not isinstance(self.kind, OpKind):
            raise TypeError(f"kind must be OpKind, not {type(self.kind).__name__}")
        if not isinstance(self.key, bytes):
            raise TypeError(f"key must be bytes, not {type(self.key).__name__}")
        if not isinstance(self.invoke, int):
            raise TypeError(f"invoke must be int, not {type(self.invoke).__name__}")
        if self.complete is not None and not isinstance(self.complete, int):
            raise TypeError(f"complete must be int or None, not {type(self.complete).__name__}")
        if self.complete is not None and self.complete < self.invoke:
            raise ValueError(f"complete ({self.complete}) is before invoke ({self.invoke})")
        for name in ("value", "expected"):
            got = getattr(self, name)
            if got is not None and not isinstance(got, bytes):
                raise TypeError(f"{name} must be bytes or None, not {type(got).__name__}")
        if self.kind is OpKind.PUT and self.value is None:
            raise ValueError("a put needs a value")
        if self.complete is not None:
            self._check_output()

    def _check_output(self) -> None:
        out = self.output
        if self.kind is OpKind.GET and out is not None and not isinstance(out, bytes):
            raise TypeError(f"output of a get must be bytes or None, not {type(out).__name__}")
        if self.kind is OpKind.CAS and not isinstance(out, bool):
            raise TypeError(f"output of a cas must be bool, not {type(out).__name__}")
        if self.kind is OpKind.DELETE and out is not None and not isinstance(out, bool):
            raise TypeError(f"output of a delete must be bool or None, not {type(out).__name__}")

    @property
    def pending(self) -> bool:
        """True when the outcome is unknown (no completion was observed)."""
        return self.complete is None

    def describe(self) -> str:
        """A one-line human description, for failure messages."""
        end = "?" if self.complete is None else str(self.complete)
        if self.kind is OpKind.PUT:
            body = f"put({self.value!r})"
        elif self.kind is OpKind.GET:
            body = "get()"
        elif self.kind is OpKind.DELETE:
            body = "delete()"
        else:
            body = f"cas({self.expected!r} -> {self.value!r})"
        result = "unknown" if self.complete is None else repr(self.output)
        return f"client {self.client}: {body} = {result}  [{self.invoke}, {end}]"


def step(state: State, op: Operation) -> tuple[bool, State]:
    """Apply ``op`` to ``state`` in the sequential model.

    Returns ``(legal, new_state)``: ``legal`` is False when the operation's
    recorded output cannot have come from ``state``. An operation with an
    unknown outcome is always legal and has the effect it would have had.
    """
    kind = op.kind
    if kind is OpKind.GET:
        # A get with an unknown outcome is dropped before the search; if one
        # gets here anyway it observed nothing and constrains nothing.
        return (op.pending or op.output == state), state
    if kind is OpKind.PUT:
        return True, op.value
    if kind is OpKind.DELETE:
        if op.pending or op.output is None:
            return True, None
        return op.output == (state is not None), None
    matches = state == op.expected
    if op.pending:
        return True, (op.value if matches else state)
    if op.output:
        return matches, (op.value if matches else state)
    return not matches, state
