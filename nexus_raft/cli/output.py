"""How the programs print: bytes shown safely, JSON values, tables, durations, sizes.

Rules every program follows:

* Text output shows a key or value as UTF-8 when it is printable text;
  anything else (invalid UTF-8, control characters) is escaped as ``\\xNN``
  so it can never break a line or a terminal. Never a Python ``b'...'`` repr.
* JSON output carries a value under ``"value"`` always, with
  ``"encoding": "utf-8"`` when it is text and ``"base64"`` when it is not (so
  a consumer finds the same field whatever the value holds).
* Tables are plain columns separated by two spaces, a header in capitals.
"""

from __future__ import annotations

import base64
from collections.abc import Sequence
from typing import Any

__all__ = ["duration", "json_bytes", "safe_text", "size", "table"]


def _escape(ch: str) -> str:
    code = ord(ch)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def safe_text(data: bytes) -> str:
    """``data`` for one line of text output (see the module rules)."""
    text = data.decode("utf-8", "backslashreplace")
    if text.isprintable():
        return text
    return "".join(ch if ch.isprintable() else _escape(ch) for ch in text)


def json_bytes(data: bytes | None, field: str = "value") -> dict[str, Any]:
    """``{field: text, "encoding": "utf-8"}`` or base64 (``None``: ``{field: None}``)."""
    encoding_field = "encoding" if field == "value" else f"{field}_encoding"
    if data is None:
        return {field: None, encoding_field: None}
    try:
        return {field: data.decode("utf-8"), encoding_field: "utf-8"}
    except UnicodeDecodeError:
        return {field: base64.b64encode(data).decode("ascii"), encoding_field: "base64"}


def table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """Columns padded to their widest cell, two spaces apart, trailing spaces trimmed."""
    cells = [[str(c) for c in header], *([str(c) for c in r] for r in rows)]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    return "\n".join(
        "  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in cells
    )


def duration(seconds: float | None) -> str:
    """``0.012`` -> ``12ms``, ``3.4`` -> ``3.4s``, ``None`` -> ``-``."""
    if seconds is None:
        return "-"
    if seconds < 1:
        return f"{seconds * 1000:.0f}ms"
    if seconds < 120:
        return f"{seconds:.1f}s"
    return f"{seconds / 60:.0f}m"


def size(n: int) -> str:
    """Bytes for people: ``1536`` -> ``1.5 KiB``."""
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} TiB"  # pragma: no cover - the loop returns
