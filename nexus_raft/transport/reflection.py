"""One descriptor pool for gRPC server reflection over every pool nexus_raft uses.

Most generated code registers its files in protobuf's default pool, but the
etcd API's messages live in a private pool (see :mod:`.protogen`: another
library in the same process may register etcd's symbols in the default
pool). gRPC's reflection service reads a single pool, so a server that
hosts both would list ``etcdserverpb.KV`` without being able to describe it
(``grpcurl describe`` and calls by reflection fail). :func:`reflection_pool`
builds a pool holding the file of each named service, with its imports,
taken from whichever pool defines it.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from google.protobuf import descriptor_pool  # type: ignore[import-untyped]

from nexus_raft.transport._generated.etcd._pool import POOL as _ETCD_POOL

__all__ = ["reflection_pool"]


def _sources() -> tuple[descriptor_pool.DescriptorPool, ...]:
    # The private pools first: a service we serve from one of them wins over
    # a same-named service another library put in the default pool.
    return (_ETCD_POOL, descriptor_pool.Default())


def reflection_pool(service_names: Iterable[str]) -> descriptor_pool.DescriptorPool:
    """A new pool with the files (and their imports) defining ``service_names``.

    A name no pool defines is left out (reflection then lists it without a
    description, as it would have anyway).
    """
    pool = descriptor_pool.DescriptorPool()
    added: set[str] = set()

    def add(file: Any) -> None:
        if file.name in added:
            return
        added.add(file.name)
        for dependency in file.dependencies:
            add(dependency)
        pool.AddSerializedFile(file.serialized_pb)

    for name in service_names:
        for source in _sources():
            try:
                service = source.FindServiceByName(name)
            except KeyError:
                continue
            add(service.file)
            break
    return pool
