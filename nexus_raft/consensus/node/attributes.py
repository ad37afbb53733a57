"""Member attributes: what each member publishes about itself through the log.

The address book (``--peers``, configuration entries) names where each
member serves *peers*. Clients need something else: where each member serves
*clients*, and a name to show. As etcd does, every member publishes its own
attributes (a name and its client URLs) as a log entry after it starts and
whenever they changed; every full member applies the entry in log order, so
all of them (and every status answer, redirect and member list) agree on
the same attributes at the same index.

An attributes entry is a normal log entry whose payload starts with
:data:`MAGIC`, followed by a JSON object ``{"id", "name", "client_urls"}``.
The node applies it itself (it never reaches the application's state
machine, which sees a no-op at that index), records it in the store (tree
:data:`TREE`) before the state machine's applied index can pass it, and
ships the whole book in every snapshot header, so a member that installs a
snapshot learns the attributes whose entries were compacted away. An entry
for a member that is not in the configuration at that index is ignored, and
removing a member forgets its attributes.

Witnesses keep no payloads, so they do not apply these entries: a witness
learns attributes only from snapshot headers, and may not know them.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from nexus_raft.errors import InvalidArgument
from nexus_raft.storage import Tree
from nexus_raft.transport.address import parse_endpoint

__all__ = [
    "MAGIC",
    "TREE",
    "AttributeBook",
    "MemberAttributes",
    "decode_publish",
    "encode_publish",
    "is_publish",
    "url_endpoint",
]

_log = logging.getLogger(__name__)

MAGIC = b"\x00NXATTR\x01"
"""Payload prefix of an attributes entry (reserved: applications' commands cannot start with it)."""

TREE = "node.attributes"
"""Tree of the node's store holding the applied attributes (id -> JSON)."""

_MAX_NAME = 256
_MAX_URLS = 8
_MAX_URL = 512


def url_endpoint(url: str) -> str:
    """A client URL as an endpoint to dial (``http://`` dropped, ``https://`` kept)."""
    return url[len("http://") :] if url.lower().startswith("http://") else url


def _check_url(url: object) -> str:
    if not isinstance(url, str):
        raise TypeError(f"client URL must be a str, not {type(url).__name__}")
    if len(url) > _MAX_URL:
        raise InvalidArgument(f"client URL of {len(url)} characters is too long")
    try:
        host, port, tls = parse_endpoint(url)
    except ValueError as exc:
        raise InvalidArgument(str(exc)) from None
    host = f"[{host}]" if ":" in host else host
    return f"{'https' if tls else 'http'}://{host}:{port}"


@dataclass(frozen=True, slots=True)
class MemberAttributes:
    """A member's published attributes: ``name`` and ``client_urls`` (``http(s)://host:port``).

    Construction normalises the URLs (a bare ``host:port`` becomes
    ``http://host:port``) and refuses bad ones with ``InvalidArgument``.
    """

    name: str = ""
    client_urls: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not isinstance(self.name, str):
            raise TypeError(f"name must be a str, not {type(self.name).__name__}")
        if len(self.name) > _MAX_NAME:
            raise InvalidArgument(f"member name of {len(self.name)} characters is too long")
        if isinstance(self.client_urls, str) or not isinstance(self.client_urls, Iterable):
            raise TypeError("client_urls must be a sequence of str")
        urls = tuple(_check_url(u) for u in self.client_urls)
        if len(urls) > _MAX_URLS:
            raise InvalidArgument(f"at most {_MAX_URLS} client URLs, got {len(urls)}")
        object.__setattr__(self, "client_urls", urls)

    @property
    def client_endpoint(self) -> str | None:
        """The first client URL as a dialable endpoint (see :func:`url_endpoint`), or None."""
        return url_endpoint(self.client_urls[0]) if self.client_urls else None

    def to_json(self) -> dict[str, Any]:
        """JSON-ready form (the snapshot header and the store use it)."""
        return {"name": self.name, "client_urls": list(self.client_urls)}

    @classmethod
    def from_json(cls, doc: object) -> MemberAttributes:
        """Inverse of :meth:`to_json`; ``InvalidArgument`` for anything malformed."""
        if not isinstance(doc, dict):
            raise InvalidArgument("member attributes must be a JSON object")
        name, urls = doc.get("name", ""), doc.get("client_urls", [])
        if not isinstance(name, str) or not isinstance(urls, list):
            raise InvalidArgument("member attributes need a string name and a list of URLs")
        try:
            return cls(name, tuple(urls))
        except TypeError as exc:
            raise InvalidArgument(str(exc)) from None


def encode_publish(member_id: int, attrs: MemberAttributes) -> bytes:
    """The log payload that publishes ``member_id``'s attributes."""
    return MAGIC + orjson.dumps({"id": member_id, **attrs.to_json()})


def is_publish(data: bytes) -> bool:
    """Whether a log payload is an attributes entry (not an application command)."""
    return data[: len(MAGIC)] == MAGIC


def decode_publish(data: bytes) -> tuple[int, MemberAttributes]:
    """Inverse of :func:`encode_publish`; ``InvalidArgument`` for a malformed payload."""
    if not is_publish(data):
        raise InvalidArgument("not a member attributes entry")
    try:
        doc = orjson.loads(data[len(MAGIC) :])
    except orjson.JSONDecodeError as exc:
        raise InvalidArgument(f"undecodable member attributes: {exc}") from None
    if not isinstance(doc, dict):
        raise InvalidArgument("member attributes must be a JSON object")
    member = doc.get("id")
    if isinstance(member, bool) or not isinstance(member, int) or member <= 0:
        raise InvalidArgument("member attributes need a positive member id")
    return member, MemberAttributes.from_json(doc)


class AttributeBook:
    """Every member's applied attributes (in memory, persisted in ``tree`` when given).

    Only the node's apply path and snapshot installs change it, in log order.
    """

    def __init__(self, tree: Tree | None = None) -> None:
        self._tree = tree
        self._book: dict[int, MemberAttributes] = {}
        if tree is None:
            return
        for key, value in tree.iter():
            try:
                self._book[int(key.decode())] = MemberAttributes.from_json(orjson.loads(value))
            except (ValueError, orjson.JSONDecodeError) as exc:
                _log.warning("ignoring stored attributes of member %r: %s", key, exc)

    def get(self, member_id: int) -> MemberAttributes | None:
        """``member_id``'s attributes, or None when it has published none (that we know of)."""
        return self._book.get(member_id)

    def all(self) -> dict[int, MemberAttributes]:
        """A copy of the whole book."""
        return dict(self._book)

    def set(self, member_id: int, attrs: MemberAttributes) -> bool:
        """Record ``member_id``'s attributes (persisted first); True when they changed."""
        if self._book.get(member_id) == attrs:
            return False
        if self._tree is not None:
            # Carried: applied state, durable in order with the state machine's.
            self._tree.set(str(member_id).encode(), orjson.dumps(attrs.to_json()), carry=True)
        self._book[member_id] = attrs
        return True

    def forget(self, member_id: int) -> None:
        """Drop a removed member's attributes."""
        if self._book.pop(member_id, None) is not None and self._tree is not None:
            self._tree.delete(str(member_id).encode(), carry=True)

    def header(self) -> dict[str, Any]:
        """The book as a snapshot header field (``{"<id>": {...}}``)."""
        return {str(k): v.to_json() for k, v in sorted(self._book.items())}

    def install(self, header: Mapping[str, Any], members: Iterable[int]) -> None:
        """Take a snapshot sender's book (:meth:`header`) for the members of the snapshot.

        The sender's book is at least as new as the snapshot, so it replaces
        ours; members outside the snapshot's configuration are dropped.
        """
        keep = set(members)
        new: dict[int, MemberAttributes] = {}
        for key, doc in header.items():
            try:
                member = int(key)
                attrs = MemberAttributes.from_json(doc)
            except (ValueError, TypeError) as exc:
                _log.warning("ignoring snapshot attributes of member %r: %s", key, exc)
                continue
            if member in keep:
                new[member] = attrs
        for member in [m for m in self._book if m not in new]:
            self.forget(member)
        for member, attrs in new.items():
            self.set(member, attrs)
