"""The backup file format: round trip, and every kind of damage refused."""

from __future__ import annotations

import io

import pytest

from nexus_raft.consensus.node.backup import (
    BackupReader,
    encode_backup,
    new_meta,
    read_backup_file,
    verify_backup_file,
)
from nexus_raft.errors import CorruptionError

CHUNKS = [b"alpha" * 100, b"", b"beta", bytes(range(256)) * 50]


def backup_bytes() -> bytes:
    meta = new_meta(42, 7, cluster_id="c", members={1: "a:1"}, state_machine="SM", member_id=1)
    return b"".join(encode_backup(meta, CHUNKS))


def test_round_trip_in_any_piece_sizes() -> None:
    raw = backup_bytes()
    for piece in (1, 3, 7, 1000, len(raw)):
        reader = BackupReader()
        got: list[bytes] = []
        for i in range(0, len(raw), piece):
            got += reader.feed(raw[i : i + piece])
        meta = reader.finish()
        assert (meta.index, meta.term, meta.cluster_id) == (42, 7, "c")
        assert got == [c for c in CHUNKS if c]
    meta, size, digest = verify_backup_file(io.BytesIO(raw))
    assert meta.members == {"1": "a:1"} and size == sum(map(len, CHUNKS)) and len(digest) == 64
    assert b"".join(read_backup_file(io.BytesIO(raw))) == b"".join(CHUNKS)


@pytest.mark.parametrize(
    "damage",
    [
        lambda raw: raw[:-1],  # cut in the trailer
        lambda raw: raw[: len(raw) // 2],  # cut in the data
        lambda raw: raw + b"x",  # padded
        lambda raw: raw[:40] + bytes([raw[40] ^ 1]) + raw[41:],  # a flipped bit in the data
        lambda raw: raw[:-5] + bytes([raw[-5] ^ 1]) + raw[-4:],  # a flipped bit in the digest
        lambda raw: b"NOTABACK" + raw[8:],  # not a backup
        lambda raw: b"",  # empty
    ],
)
def test_damaged_backups_are_refused(damage: object) -> None:
    raw = damage(backup_bytes())  # type: ignore[operator]
    with pytest.raises(CorruptionError):
        verify_backup_file(io.BytesIO(raw))
    with pytest.raises(CorruptionError):
        list(read_backup_file(io.BytesIO(raw)))
