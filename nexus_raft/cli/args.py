"""Command lines as people type them: global options anywhere, ``--json``/``-w``, ``--version``.

Every program passes its arguments through :func:`normalize` before click
parses them:

* ``--json`` and ``-w json|table`` (``--write-out``) may stand before or
  after the subcommand; they are moved to where the program declares
  ``--json`` (its root options, else the end of the command line);
  ``-w table`` is the default and is dropped.
* The program's root options (``nexusctl --endpoints ...``) may also follow
  the subcommand; they are moved to the front.
* Everything after ``--`` is left alone, so a value that looks like an option
  can still be passed (``nexusctl put k -- --json``).

:func:`wants_version` tells whether ``--version`` was asked for.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

__all__ = ["UsageError", "normalize", "wants_version"]

_WRITE_OUT = ("-w", "--write-out")


class UsageError(Exception):
    """A malformed command line (exit status 2, one line)."""


def _split(args: Sequence[str]) -> tuple[list[str], list[str]]:
    """(before ``--``, ``--`` and after)."""
    items = list(args)
    if "--" in items:
        cut = items.index("--")
        return items[:cut], items[cut:]
    return items, []


def wants_version(args: Sequence[str]) -> bool:
    """Whether ``--version`` appears (before any ``--``)."""
    return "--version" in _split(args)[0]


def _root_options(command: Any) -> dict[str, bool]:
    """Option name -> takes a value, for the root command's options (a group's only)."""
    if not hasattr(command, "commands"):
        return {}
    out: dict[str, bool] = {}
    for param in getattr(command, "params", ()):
        if getattr(param, "param_type_name", "") != "option":
            continue
        takes_value = not (getattr(param, "is_flag", False) or getattr(param, "count", False))
        for name in (*param.opts, *param.secondary_opts):
            if name.startswith("--") and name not in ("--json", "--help"):
                out[name] = takes_value
    return out


def _declares_root_json(command: Any) -> bool:
    return hasattr(command, "commands") and any(
        "--json" in getattr(p, "opts", ()) for p in getattr(command, "params", ())
    )


def normalize(command: Any, args: Sequence[str]) -> list[str]:
    """``args`` rearranged as described in the module docstring."""
    head, tail = _split(args)
    json_mode = False
    rest: list[str] = []
    i = 0
    while i < len(head):
        arg = head[i]
        if arg == "--json":
            json_mode = True
        elif arg in _WRITE_OUT or (arg.startswith(("--write-out=", "-w")) and arg != "-w"):
            if arg in _WRITE_OUT:
                if i + 1 >= len(head):
                    raise UsageError(f"{arg} needs a value: json or table")
                value = head[i + 1]
                i += 1
            else:
                value = arg.split("=", 1)[1] if arg.startswith("--") else arg[2:].lstrip("=")
            if value not in ("json", "table"):
                raise UsageError(f"-w/--write-out must be json or table, not {value!r}")
            json_mode = value == "json"
        else:
            rest.append(arg)
        i += 1
    front: list[str] = []
    options = _root_options(command)
    if options:
        kept: list[str] = []
        i = 0
        while i < len(rest):
            arg = rest[i]
            name = arg.split("=", 1)[0]
            if name in options:
                front.append(arg)
                if options[name] and "=" not in arg and i + 1 < len(rest):
                    front.append(rest[i + 1])
                    i += 1
            else:
                kept.append(arg)
            i += 1
        rest = kept
    if json_mode:
        if _declares_root_json(command):
            front.insert(0, "--json")
        else:
            rest.append("--json")
    return front + rest + tail
