"""Derive ``transport/proto/etcd/*.proto`` from etcd's own protocol files.

etcd's ``rpc.proto`` (package ``etcdserverpb``), ``kv.proto`` (``mvccpb``)
and ``auth.proto`` (``authpb``) come from Debian's ``golang-etcd-server-dev``
package (etcd 3.4.23, Apache-2.0), installed under :data:`DEBIAN_SOURCE`.
They need three changes before plain ``protoc`` accepts them:

* the gogoproto and google.api (grpc-gateway) annotations are stripped: the
  imports, the ``option (gogoproto.x) = ...;`` file options, the
  ``[(gogoproto.x) = ...]`` field options and the ``option (google.api.http)
  = {...};`` blocks inside ``rpc`` definitions. None of them changes the
  wire format (they steer Go code generation and the HTTP gateway);
* imports are pointed at our copies (``nexus_raft/transport/proto/etcd/``);
* the few 3.5 additions that etcdctl 3.5 sends are added, with the field
  numbers of etcd's documented 3.5 API: ``MemberListRequest.linearizable``,
  ``Auth.AuthStatus`` and ``Maintenance.Downgrade``.

The result, with a licence header, is checked in; ``make proto`` rewrites it
when the Debian source is present (else it keeps the checked-in copy), and
``tests/transport/test_protogen.py`` checks the two agree when it is.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

__all__ = ["DEBIAN_SOURCE", "ETCD_PROTOS", "EtcdProto", "derive", "strip_annotations"]

DEBIAN_SOURCE = Path("/usr/share/gocode/src/go.etcd.io/etcd")
"""Where ``golang-etcd-server-dev`` installs etcd's Go sources."""

_OUR_PREFIX = "nexus_raft/transport/proto/etcd"


@dataclass(frozen=True, slots=True)
class EtcdProto:
    """One etcd protocol file: its path under the etcd source tree and our name for it."""

    source: str
    name: str


ETCD_PROTOS = (
    EtcdProto("auth/authpb/auth.proto", "auth.proto"),
    EtcdProto("mvcc/mvccpb/kv.proto", "kv.proto"),
    EtcdProto("etcdserver/etcdserverpb/rpc.proto", "rpc.proto"),
)
"""The files we serve from, in dependency order."""

_IMPORT_MAP = {
    "etcd/mvcc/mvccpb/kv.proto": f"{_OUR_PREFIX}/kv.proto",
    "etcd/auth/authpb/auth.proto": f"{_OUR_PREFIX}/auth.proto",
}

_HEADER = """\
// Copyright 2013-2017 The etcd Authors; 2014-2015 CoreOS, Inc.
//
// Licensed under the Apache License, Version 2.0 (the "License");
// you may not use this file except in compliance with the License.
// You may obtain a copy of the License at
//
//     http://www.apache.org/licenses/LICENSE-2.0
//
// Unless required by applicable law or agreed to in writing, software
// distributed under the License is distributed on an "AS IS" BASIS,
// WITHOUT WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied.
// See the License for the specific language governing permissions and
// limitations under the License.
//
// From etcd 3.4.23 ({source}, Debian package golang-etcd-server-dev).
// Changed by nexus_raft.transport.etcdproto (`make proto`): gogoproto and
// google.api annotations stripped, imports pointed at nexus_raft's copies{extra}.
// GENERATED: edit etcdproto.py, not this file.

"""

_GOGO_IMPORT = re.compile(r'^import "(gogoproto/gogo\.proto|google/api/annotations\.proto)";\n',
                          re.MULTILINE)
_GATEWAY_COMMENT = re.compile(r"^// for grpc-gateway\n", re.MULTILINE)
_GOGO_FILE_OPTION = re.compile(r"^option \(gogoproto\.[a-z_]+\) = [a-z]+;\n", re.MULTILINE)
_FIELD_OPTIONS = re.compile(r"\s*\[\((?:gogoproto|google\.api)\.[^\]]*\]")
_HTTP_OPTION = "option (google.api.http) = {"
_EMPTY_RPC_BODY = re.compile(r"\)\s*\{\s*\}")
_IMPORT = re.compile(r'^import "([^"]+)";$', re.MULTILINE)
_BLANK_RUNS = re.compile(r"\n{3,}")


def _drop_http_options(text: str) -> str:
    """Remove every ``option (google.api.http) = {...};`` (braces may nest), then empty bodies.

    ``rpc X(A) returns (B) { option (google.api.http) = {...}; }`` becomes
    ``rpc X(A) returns (B) {}``.
    """
    while (start := text.find(_HTTP_OPTION)) >= 0:
        depth, pos = 0, start + len(_HTTP_OPTION) - 1
        while True:
            ch = text[pos]
            depth += (ch == "{") - (ch == "}")
            pos += 1
            if depth == 0:
                break
        if text[pos] == ";":
            pos += 1
        text = text[:start] + text[pos:]
    return _EMPTY_RPC_BODY.sub(") {}", text)


def strip_annotations(text: str) -> str:
    """``text`` without gogoproto/google.api imports and options; imports repointed."""
    text = _GOGO_IMPORT.sub("", text)
    text = _GATEWAY_COMMENT.sub("", text)
    text = _GOGO_FILE_OPTION.sub("", text)
    text = _FIELD_OPTIONS.sub("", text)
    text = _drop_http_options(text)
    if "gogoproto" in text or "google.api" in text:
        raise ValueError("an annotation survived stripping (a new form in the source?)")

    def repoint(m: re.Match[str]) -> str:
        target = _IMPORT_MAP.get(m.group(1))
        if target is None:
            raise ValueError(f"unexpected import {m.group(1)!r}")
        return f'import "{target}";'

    text = _IMPORT.sub(repoint, text)
    return _BLANK_RUNS.sub("\n\n", text)


# --- the 3.5 additions (etcd's documented 3.5 API; field numbers as there) ---------------

_ADDITIONS: tuple[tuple[str, str, str], ...] = (
    # (anchor that must occur once, text to put in its place, what it adds)
    (
        "message MemberListRequest {\n}",
        "message MemberListRequest {\n"
        "  // linearizable (3.5): answer from the committed membership (nexus_raft always does).\n"
        "  bool linearizable = 1;\n}",
        "MemberListRequest.linearizable",
    ),
    (
        "  rpc AuthDisable(AuthDisableRequest) returns (AuthDisableResponse) {}\n",
        "  rpc AuthDisable(AuthDisableRequest) returns (AuthDisableResponse) {}\n\n"
        "  // AuthStatus (3.5) displays authentication status.\n"
        "  rpc AuthStatus(AuthStatusRequest) returns (AuthStatusResponse) {}\n",
        "Auth.AuthStatus",
    ),
    (
        "message AuthDisableResponse {\n  ResponseHeader header = 1;\n}\n",
        "message AuthDisableResponse {\n  ResponseHeader header = 1;\n}\n\n"
        "message AuthStatusRequest {\n}\n\n"
        "message AuthStatusResponse {\n"
        "  ResponseHeader header = 1;\n"
        "  bool enabled = 2;\n"
        "  // authRevision is the current revision of the auth store.\n"
        "  uint64 authRevision = 3;\n}\n",
        "AuthStatusRequest/Response",
    ),
    (
        "  rpc MoveLeader(MoveLeaderRequest) returns (MoveLeaderResponse) {}\n",
        "  rpc MoveLeader(MoveLeaderRequest) returns (MoveLeaderResponse) {}\n\n"
        "  // Downgrade (3.5) validates, enables or cancels a cluster version downgrade.\n"
        "  rpc Downgrade(DowngradeRequest) returns (DowngradeResponse) {}\n",
        "Maintenance.Downgrade",
    ),
    (
        "message MoveLeaderResponse {\n  ResponseHeader header = 1;\n}\n",
        "message MoveLeaderResponse {\n  ResponseHeader header = 1;\n}\n\n"
        "message DowngradeRequest {\n"
        "  enum DowngradeAction {\n"
        "    VALIDATE = 0;\n    ENABLE = 1;\n    CANCEL = 2;\n  }\n"
        "  DowngradeAction action = 1;\n"
        "  // version is the target version to downgrade to.\n"
        "  string version = 2;\n}\n\n"
        "message DowngradeResponse {\n"
        "  ResponseHeader header = 1;\n"
        "  // version is the current cluster version.\n"
        "  string version = 2;\n}\n",
        "DowngradeRequest/Response",
    ),
)


def _add_35(text: str) -> str:
    for anchor, replacement, what in _ADDITIONS:
        if text.count(anchor) != 1:
            raise ValueError(f"cannot add {what}: its anchor is not in rpc.proto exactly once")
        text = text.replace(anchor, replacement)
    return text


def derive(source_root: Path = DEBIAN_SOURCE) -> dict[str, str]:
    """Our ``.proto`` texts (name -> text) from the etcd source tree at ``source_root``."""
    out: dict[str, str] = {}
    for proto in ETCD_PROTOS:
        text = strip_annotations((source_root / proto.source).read_text(encoding="utf-8"))
        extra = ""
        if proto.name == "rpc.proto":
            text = _add_35(text)
            extra = ";\n// 3.5 additions: " + ",\n//   ".join(a[2] for a in _ADDITIONS)
        out[proto.name] = _HEADER.format(source=proto.source, extra=extra) + text
    return out


def write(proto_dir: Path, source_root: Path = DEBIAN_SOURCE) -> list[Path]:
    """Write :func:`derive`'s texts into ``proto_dir`` (created if needed); the paths."""
    proto_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for name, text in derive(source_root).items():
        path = proto_dir / name
        path.write_text(text, encoding="utf-8")
        written.append(path)
    return written
