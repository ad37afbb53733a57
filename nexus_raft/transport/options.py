"""Defaults shared by client and server: limits, deadlines and gRPC options."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "DEFAULT_CLUSTER_ID",
    "MAX_MESSAGE_BYTES",
    "SNAPSHOT_CHUNK_BYTES",
    "Timeouts",
    "channel_options",
    "server_options",
]

DEFAULT_CLUSTER_ID = "default"
"""The cluster id used when none is given (clients and servers must agree)."""

MAX_MESSAGE_BYTES = 16 * 1024 * 1024
"""Largest single message either side sends or accepts (append batches, chunks)."""

SNAPSHOT_CHUNK_BYTES = 1024 * 1024
"""Largest data chunk in an InstallSnapshot stream; the server refuses bigger ones."""


def _check_timeout(name: str, value: float | None) -> None:
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be a number of seconds, not {type(value).__name__}")
    if value <= 0:
        raise ValueError(f"{name} must be positive, got {value}")


@dataclass(frozen=True, slots=True)
class Timeouts:
    """Per-RPC deadlines in seconds (``None``: no deadline).

    Unary Raft RPCs get short deadlines so an unreachable or stuck peer costs
    at most that long; a snapshot may legitimately take minutes.
    """

    vote: float | None = 1.0
    append: float | None = 2.0
    timeout_now: float | None = 1.0
    read_index: float | None = 2.0
    snapshot: float | None = 600.0

    def __post_init__(self) -> None:
        for name in ("vote", "append", "timeout_now", "read_index", "snapshot"):
            _check_timeout(name, getattr(self, name))


def check_timeout(value: float | None) -> None:
    """Validate a per-call ``timeout`` override (TypeError / ValueError)."""
    _check_timeout("timeout", value)


def channel_options(max_message_bytes: int = MAX_MESSAGE_BYTES) -> list[tuple[str, int | str]]:
    """gRPC channel arguments for a peer channel.

    * keepalive pings every 10 s (also without calls) find a dead peer behind a
      silent connection within ~15 s, which matters for the long-lived stream;
    * reconnect backoff 0.1 s .. 1 s: a restarted peer is reached again quickly
      (gRPC's defaults go up to two minutes);
    * transparent retries off: Raft decides itself what to resend.
    """
    return [
        ("grpc.max_send_message_length", max_message_bytes),
        ("grpc.max_receive_message_length", max_message_bytes),
        ("grpc.keepalive_time_ms", 10_000),
        ("grpc.keepalive_timeout_ms", 5_000),
        ("grpc.keepalive_permit_without_calls", 1),
        ("grpc.http2.max_pings_without_data", 0),
        ("grpc.initial_reconnect_backoff_ms", 100),
        ("grpc.min_reconnect_backoff_ms", 100),
        ("grpc.max_reconnect_backoff_ms", 1_000),
        ("grpc.enable_retries", 0),
    ]


def server_options(max_message_bytes: int = MAX_MESSAGE_BYTES) -> list[tuple[str, int | str]]:
    """gRPC server arguments matching :func:`channel_options`.

    ``so_reuseport`` is off so a second server on a busy port fails to bind
    instead of silently sharing it; pings as frequent as the clients' keepalive
    are allowed (the default policy would answer them with GOAWAY).
    """
    return [
        ("grpc.max_send_message_length", max_message_bytes),
        ("grpc.max_receive_message_length", max_message_bytes),
        ("grpc.so_reuseport", 0),
        ("grpc.keepalive_permit_without_calls", 1),
        ("grpc.http2.min_ping_interval_without_data_ms", 5_000),
        ("grpc.http2.max_ping_strikes", 0),
    ]
