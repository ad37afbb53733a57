"""The etcd v3 API on a nexus_raft member (etcdserverpb KV, Watch, Lease, Cluster, ...).

A second front end beside the native KV service, on the same listen port and
over the same replicated state machine: ``etcdctl`` and etcd's client
libraries work unchanged. The apply side (what an etcd Put/DeleteRange/Txn/
Compact/lease command does to the MVCC state) lives in
:mod:`~nexus_raft.kv.etcd.apply`; the servicers in ``service_*.py``.
This package file imports nothing, so the state machine can load the apply
side without the servicers.
"""
