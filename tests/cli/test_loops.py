"""The event loop a program runs on (``--event-loop``) and what a node reports about it."""

from __future__ import annotations

import asyncio

import pytest

from nexus_raft.cli.loops import run_on, uvloop_available
from nexus_raft.consensus.node.status import event_loop_name


async def _name() -> str:
    await asyncio.sleep(0)
    return event_loop_name()


def test_asyncio_is_reported_as_asyncio() -> None:
    assert run_on("asyncio", _name()) == "asyncio"
    assert event_loop_name() == ""  # outside a loop


@pytest.mark.skipif(not uvloop_available(), reason="uvloop is not installed")
def test_uvloop_is_chosen_by_name_and_by_auto() -> None:
    assert run_on("uvloop", _name()) == "uvloop"
    assert run_on("auto", _name()) == "uvloop"


def test_an_unknown_loop_is_refused() -> None:
    coro = _name()
    with pytest.raises(ValueError, match="event loop"):
        run_on("fast", coro)
    assert coro.cr_frame is None  # closed, never left pending
