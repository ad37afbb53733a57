"""Coverage tables for the simulators: named situations, counted per run, printed at the end.

A clean simulator run says nothing about states it never reached. Each
simulator therefore declares the situations it is meant to reach (a
:class:`Situations` table, one row per situation with a one-line
description), counts them while it runs, and prints the table at the end.
A row at zero makes the run fail: the seeds did not reach a state the
verification claims to cover.

Shared by the core simulator (``tests/sim``, rows in ``tests/sim/situations.py``)
and the whole-node simulator (``tests/sim_node``): a simulator declares its
own ``Situations(title, rows)``, counts into a plain ``collections.Counter``
(picklable, so worker processes return it and the parent sums them) with
``table.hit(counter, name)``, and ends with ``table.report(totals, out)``,
which prints the table and returns the missing rows. Unknown row names raise
``KeyError`` at the moment they are counted, so a typo cannot create a row
that is never checked.

Counting costs one dict update; ``hit`` is meant for events, not for every
message (use the counter directly for hot-path statistics that are not rows).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from typing import TextIO

__all__ = ["Situations", "merge"]


class Situations:
    """A declared set of named situations (the rows of one coverage table).

    ``rows`` are (name, description) pairs; names are short and stable (they
    are the keys counted), descriptions say what happened in words. Row order
    is the print order.
    """

    __slots__ = ("_desc", "names", "title")

    def __init__(self, title: str, rows: Sequence[tuple[str, str]]) -> None:
        if not isinstance(title, str):
            raise TypeError(f"title must be a str, not {type(title).__name__}")
        self.title = title
        self.names: tuple[str, ...] = tuple(name for name, _ in rows)
        self._desc: dict[str, str] = dict(rows)
        if len(self._desc) != len(self.names):
            dup = sorted({n for n in self.names if self.names.count(n) > 1})
            raise ValueError(f"duplicate situation names: {dup}")

    def __len__(self) -> int:
        return len(self.names)

    def __contains__(self, name: object) -> bool:
        return name in self._desc

    def describe(self, name: str) -> str:
        """The description of row ``name``."""
        return self._desc[name]

    def hit(self, counter: Counter[str], name: str, n: int = 1) -> None:
        """Count ``n`` occurrences of situation ``name`` into ``counter``.

        Raises ``KeyError`` for a name that is not a declared row.
        """
        if name not in self._desc:
            raise KeyError(f"{name!r} is not a situation of {self.title!r}")
        counter[name] += n

    def counts(self, totals: Mapping[str, int]) -> list[tuple[str, int]]:
        """(name, count) for every row, in row order (rows never hit count 0)."""
        return [(name, int(totals.get(name, 0))) for name in self.names]

    def missing(self, totals: Mapping[str, int]) -> list[str]:
        """Rows that were never reached."""
        return [name for name, count in self.counts(totals) if count == 0]

    def render(self, totals: Mapping[str, int], *, seeds: int | None = None) -> str:
        """The table as text: count, name, description; unreached rows marked MISSING."""
        counts = self.counts(totals)
        width = max((len(n) for n in self.names), default=4)
        cw = max((len(str(c)) for _, c in counts), default=1)
        head = f"{self.title}: {len(self.names)} situations"
        if seeds is not None:
            head += f" over {seeds} seeds"
        lines = [head]
        for name, count in counts:
            mark = "MISSING" if count == 0 else "       "
            lines.append(f"  {mark} {count:>{cw}}  {name:<{width}}  {self._desc[name]}")
        gone = self.missing(totals)
        lines.append(
            f"{self.title}: {len(self.names) - len(gone)}/{len(self.names)} situations reached"
            + (f"; never reached: {', '.join(gone)}" if gone else "")
        )
        return "\n".join(lines) + "\n"

    def report(
        self, totals: Mapping[str, int], out: TextIO, *, seeds: int | None = None
    ) -> list[str]:
        """Print the table to ``out``; returns the rows never reached (the run fails on any)."""
        out.write(self.render(totals, seeds=seeds))
        return self.missing(totals)


def merge(counters: Iterable[Mapping[str, int]]) -> Counter[str]:
    """Sum per-seed counters (a convenience for simulators that collect them in lists)."""
    total: Counter[str] = Counter()
    for c in counters:
        total.update(c)
    return total
