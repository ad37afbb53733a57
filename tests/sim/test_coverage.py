"""The shared coverage table: counting, unknown rows, rendering, missing rows."""

from __future__ import annotations

import io
from collections import Counter

import pytest

from tests.sim.coverage import Situations, merge

ROWS = (("a", "first thing"), ("b", "second thing"), ("long name", "third"))


def test_hit_counts_declared_rows_and_rejects_unknown_ones() -> None:
    t = Situations("demo", ROWS)
    c: Counter[str] = Counter()
    t.hit(c, "a")
    t.hit(c, "a", 2)
    assert c["a"] == 3
    with pytest.raises(KeyError, match="not a situation"):
        t.hit(c, "typo")


def test_duplicate_rows_refused() -> None:
    with pytest.raises(ValueError, match="duplicate"):
        Situations("demo", (("a", "x"), ("a", "y")))


def test_report_marks_missing_rows_and_returns_them() -> None:
    t = Situations("demo", ROWS)
    out = io.StringIO()
    missing = t.report(merge([Counter({"a": 1}), Counter({"b": 4, "other stat": 9})]), out, seeds=2)
    assert missing == ["long name"]
    text = out.getvalue()
    assert "demo: 3 situations over 2 seeds" in text
    assert "MISSING 0  long name" in text
    assert "2/3 situations reached; never reached: long name" in text
    assert "other stat" not in text


def test_report_all_reached() -> None:
    t = Situations("demo", ROWS)
    out = io.StringIO()
    assert t.report(Counter({"a": 1, "b": 1, "long name": 1}), out) == []
    assert "3/3 situations reached\n" in out.getvalue()
