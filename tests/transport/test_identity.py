"""Peer identity from mutual-TLS certificates: a certificate speaks for one member only."""

from __future__ import annotations

import asyncio
import logging

import pytest

from nexus_raft.transport import (
    AppendRequest,
    NodeAddress,
    PeerIdentity,
    PeerRefused,
    PeerUnavailable,
    RaftClient,
    RaftServer,
    SnapshotMeta,
    StreamReset,
    Timeouts,
    TLSConfig,
)
from nexus_raft.transport.ratelimit import LogLimiter

from .certs import MemberPki
from .helpers import NODE_ID, RecordingHandler, serving

_FAST = Timeouts(vote=3.0, append=3.0, timeout_now=3.0, snapshot=10.0)


@pytest.fixture(scope="module")
def pki() -> MemberPki:
    return MemberPki()


def _server_tls(pki: MemberPki) -> TLSConfig:
    me = pki.member(NODE_ID)
    return TLSConfig(cert=me.cert, key=me.key, ca=pki.ca.cert, require_client_cert=True)


def _as(pki: MemberPki, member: int | str) -> TLSConfig:
    pem = pki.member(member) if isinstance(member, int) else pki.named(member)
    return TLSConfig(cert=pem.cert, key=pem.key, ca=pki.ca.cert)


# --- the rule ------------------------------------------------------------------------


def test_identity_rule_reads_one_member_from_uri_dns_or_cn() -> None:
    uri = PeerIdentity()
    assert uri.kind == "uri" and uri.name_for(7) == "nexus://member/7"
    assert uri.member_of({"peer_uri": [b"nexus://member/7"]}) == 7
    assert uri.member_of({"peer_uri": [b"nexus://member/07"]}) is None  # no leading zero
    assert uri.member_of({"peer_uri": [b"nexus://member/7/x"]}) is None  # full match only
    assert uri.member_of({"peer_dns": [b"nexus://member/7"]}) is None  # wrong kind of name
    assert uri.member_of({}) is None
    dns = PeerIdentity("dns:m{id}.nexus.internal")
    assert dns.member_of({"peer_dns": [b"localhost", b"m3.nexus.internal"]}) == 3
    assert dns.member_of({"peer_dns": [b"m3xnexus.internal"]}) is None  # dots are literal
    cn = PeerIdentity("cn:member-{id}")
    assert cn.member_of({"x509_common_name": [b"member-12"]}) == 12


def test_a_certificate_naming_two_members_names_none() -> None:
    rule = PeerIdentity()
    assert rule.member_of({"peer_uri": [b"nexus://member/1", b"nexus://member/2"]}) is None
    assert rule.member_of({"peer_uri": [b"nexus://member/1", b"nexus://member/1"]}) == 1


@pytest.mark.parametrize(
    "template", ["nexus://member/", "{id}", "dns:{id}{id}", "member-{id}", "ftp:{id}"]
)
def test_bad_identity_templates_are_refused(template: str) -> None:
    with pytest.raises(ValueError):
        PeerIdentity(template)
    with pytest.raises(TypeError):
        PeerIdentity(3)  # type: ignore[arg-type]


def test_identity_needs_mutual_tls(pki: MemberPki) -> None:
    me = pki.member(NODE_ID)
    with pytest.raises(ValueError, match="mutual TLS"):
        RaftServer(RecordingHandler(), peer_identity=PeerIdentity())
    with pytest.raises(ValueError, match="mutual TLS"):
        RaftServer(
            RecordingHandler(),
            tls=TLSConfig(cert=me.cert, key=me.key),
            peer_identity=PeerIdentity(),
        )


# --- over real gRPC ----------------------------------------------------------------------


def test_member_certificate_speaks_only_for_its_member(pki: MemberPki) -> None:
    async def main() -> None:
        async with serving(tls=_server_tls(pki), peer_identity=PeerIdentity()) as (server, h):
            address = NodeAddress(NODE_ID, server.endpoint)
            async with RaftClient(address, tls=_as(pki, 3), timeouts=_FAST) as c3:
                # Member 3 speaking as member 3: served.
                assert (await c3.request_vote(5, 3, 0, 1)).vote_granted
                # Member 3's certificate claiming member 1, every RPC: refused.
                with pytest.raises(PeerRefused, match="member 3 cannot speak as member 1"):
                    await c3.request_vote(5, 1, 0, 1)
                with pytest.raises(PeerRefused):
                    await c3.append_entries(AppendRequest(term=5, leader_id=1))
                with pytest.raises(PeerRefused):
                    await c3.timeout_now(5, 1)
                with pytest.raises(PeerRefused):
                    await c3.read_index(5, 1, b"ctx")
                with pytest.raises(PeerRefused):
                    await c3.install_snapshot(SnapshotMeta(term=5, leader_id=1, index=9), b"x")
                async with c3.heartbeat_stream() as hb:
                    await hb.send(AppendRequest(term=5, leader_id=3, prev_log_index=1))
                    ok = await asyncio.wait_for(hb.__anext__(), 5)
                    assert not isinstance(ok, StreamReset) and ok.index == 1
                    await hb.send(AppendRequest(term=5, leader_id=1, prev_log_index=2))
                    refused = await asyncio.wait_for(hb.__anext__(), 5)
                    assert isinstance(refused, StreamReset)
            assert [v.candidate_id for v in h.votes] == [3]
            assert [a.leader_id for a in h.appends] == [3]
            assert h.snapshots == []

    asyncio.run(main())


def test_certificates_without_a_member_name_or_from_another_ca_are_refused(
    pki: MemberPki,
) -> None:
    async def main() -> None:
        async with serving(tls=_server_tls(pki), peer_identity=PeerIdentity()) as (server, h):
            address = NodeAddress(NODE_ID, server.endpoint)
            # Signed by the cluster CA but naming no member (e.g. a client cert).
            async with RaftClient(address, tls=_as(pki, ""), timeouts=_FAST) as anon:
                with pytest.raises(PeerRefused, match="names no member"):
                    await anon.request_vote(5, 1, 0, 1)
            # Naming member 1, signed by another CA: the TLS handshake fails.
            foreign = pki.foreign(1)
            tls = TLSConfig(cert=foreign.cert, key=foreign.key, ca=pki.ca.cert)
            async with RaftClient(address, tls=tls, timeouts=_FAST) as intruder:
                with pytest.raises(PeerUnavailable):
                    await intruder.request_vote(5, 1, 0, 1)
            # No certificate at all.
            async with RaftClient(address, tls=TLSConfig(ca=pki.ca.cert), timeouts=_FAST) as bare:
                with pytest.raises(PeerUnavailable):
                    await bare.request_vote(5, 1, 0, 1)
            assert h.votes == []

    asyncio.run(main())


class _Refusing(RecordingHandler):
    async def request_vote(self, request):  # type: ignore[no-untyped-def]
        raise PeerRefused("node 99 is not a member", kind="not-member", sender=99)


def test_handler_refusals_are_answered_at_once_and_logged_rate_limited(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def main() -> None:
        async with serving(_Refusing()) as (server, _):
            address = NodeAddress(NODE_ID, server.endpoint)
            async with RaftClient(address, timeouts=_FAST) as client:
                for _ in range(50):
                    with pytest.raises(PeerRefused, match="not a member"):
                        await client.request_vote(5, 99, 0, 1)

    with caplog.at_level(logging.INFO, logger="nexus_raft.transport"):
        asyncio.run(main())
    refusals = [r for r in caplog.records if "refused request_vote" in r.getMessage()]
    assert 1 <= len(refusals) <= 3
    assert all(r.levelno == logging.WARNING and r.exc_info is None for r in refusals)
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


def test_log_limiter_counts_what_it_suppresses(caplog: pytest.LogCaptureFixture) -> None:
    now = [0.0]
    limiter = LogLimiter(logging.getLogger("t.limiter"), interval=10, burst=2, clock=lambda: now[0])
    with caplog.at_level(logging.WARNING, logger="t.limiter"):
        emitted = [limiter.warning("k", "refused %d", i) for i in range(5)]
        assert limiter.warning("other", "another key")
        now[0] = 10.0
        assert limiter.warning("k", "refused %d", 5)
    assert emitted == [True, True, False, False, False]
    messages = [r.getMessage() for r in caplog.records]
    assert messages == [
        "refused 0",
        "refused 1",
        "another key",
        "refused 5 (3 similar messages suppressed)",
    ]
