"""``python -m nexus_raft.demo``: the cluster demo; ``--storage`` runs the embedded-store demo."""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> int:
    """Dispatch to the storage demo (``--storage``) or the cluster demo (the rest)."""
    args = list(sys.argv[1:] if argv is None else argv)
    if "--storage" in args:
        if len(args) > 1:
            sys.stderr.write("python -m nexus_raft.demo: error: --storage takes no other options\n")
            return 2
        from nexus_raft.demo.storage_demo import run_storage_demo

        return run_storage_demo()
    # Imported lazily: the cluster demo pulls in the client and gRPC.
    from nexus_raft.demo.cluster_demo import main as cluster_main

    return cluster_main(args)


if __name__ == "__main__":
    sys.exit(main())
