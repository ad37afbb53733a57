"""PeerIdentity: which member a mutual-TLS peer is, read from its certificate.

On a peer port with mutual TLS, gRPC has verified the peer's certificate
chain against the peer CA before any request arrives; what it does not know
is *which member* the certificate belongs to. A :class:`PeerIdentity` names
that rule: a template with one ``{id}`` placeholder that one of the
certificate's names must match, for example

* ``nexus://member/{id}`` (the default): a URI subject alternative name;
* ``dns:member-{id}.nexus.internal``: a DNS subject alternative name;
* ``cn:member-{id}``: the subject's common name.

Invariant: a certificate identifies at most one member. A certificate whose
names match the template for two different ids identifies none (it is
refused), so an operator mistake cannot let one key speak as two members.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

__all__ = ["DEFAULT_TEMPLATE", "PeerIdentity", "authenticated_member"]

DEFAULT_TEMPLATE = "nexus://member/{id}"
"""The identity rule used when none is configured: a URI SAN per member."""

# auth_context() keys (grpc's names) holding each kind of certificate name.
_KEYS = {"uri": "peer_uri", "dns": "peer_dns", "cn": "x509_common_name"}
_ID = r"([1-9][0-9]{0,18})"  # a positive member id that fits a signed 64-bit int


class PeerIdentity:
    """Maps a verified peer certificate to a member id (see the module docstring)."""

    __slots__ = ("_kind", "_pattern", "_template")

    def __init__(self, template: str = DEFAULT_TEMPLATE) -> None:
        if not isinstance(template, str):
            raise TypeError(f"template must be str, not {type(template).__name__}")
        kind, body = _split(template)
        if body.count("{id}") != 1:
            raise ValueError(f"identity template {template!r} must contain {{id}} exactly once")
        if not body.replace("{id}", ""):
            raise ValueError(f"identity template {template!r} needs text around {{id}}")
        prefix, _, suffix = body.partition("{id}")
        self._kind = kind
        self._template = template
        self._pattern = re.compile(re.escape(prefix) + _ID + re.escape(suffix))

    @property
    def template(self) -> str:
        """The rule as given (``nexus://member/{id}``, ``dns:...``, ``cn:...``)."""
        return self._template

    @property
    def kind(self) -> str:
        """Which certificate name is read: ``uri``, ``dns`` or ``cn``."""
        return self._kind

    def name_for(self, member_id: int) -> str:
        """The certificate name member ``member_id`` must carry (without the kind prefix)."""
        if isinstance(member_id, bool) or not isinstance(member_id, int) or member_id < 1:
            raise ValueError(f"member id must be a positive int, got {member_id!r}")
        return _split(self._template)[1].replace("{id}", str(member_id))

    def member_of(self, auth_context: Mapping[str, Sequence[bytes]]) -> int | None:
        """The member id ``auth_context`` (grpc's ``context.auth_context()``) proves, or None.

        None when the connection is not TLS, carries no client certificate,
        no name matches, or names match for more than one id.
        """
        values = auth_context.get(_KEYS[self._kind]) or ()
        found: set[int] = set()
        for raw in values:
            text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw)
            match = self._pattern.fullmatch(text)
            if match is not None:
                found.add(int(match.group(1)))
        return found.pop() if len(found) == 1 else None

    def __repr__(self) -> str:
        return f"PeerIdentity({self._template!r})"


def _split(template: str) -> tuple[str, str]:
    """``dns:x{id}`` -> (``dns``, ``x{id}``); a URI template keeps its scheme."""
    head, sep, rest = template.partition(":")
    if sep and head in ("dns", "cn") and not rest.startswith("//"):
        return head, rest
    if sep and head == "uri" and not rest.startswith("//"):
        return "uri", rest
    if "://" in template:
        return "uri", template
    raise ValueError(
        f"identity template {template!r} must be a URI (scheme://...{{id}}...), "
        "'dns:...{id}...' or 'cn:...{id}...'"
    )


def authenticated_member(context: Any, identity: PeerIdentity | None) -> int | None:
    """The member id a gRPC call's verified client certificate proves, or None.

    ``context`` is the servicer context of the call; ``identity`` None (no
    certificate rule configured) always gives None. Reusable by any service
    served on the peer port (forwarded client calls, for example).
    """
    if identity is None or context is None:
        return None
    try:
        auth = context.auth_context()
    except Exception:  # not a real gRPC context, or the call is already gone
        return None
    if not isinstance(auth, Mapping):
        return None
    return identity.member_of(auth)
