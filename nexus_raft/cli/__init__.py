"""nexus_raft.cli: the typer programs behind ``bin/`` and the console scripts.

``node`` (``nexus-node``), ``witness`` (``nexus-witness``), ``ctl``
(``nexusctl``), ``store`` (``nexus-store``) and ``common`` (shared option
parsing, logging set-up and one-line errors).

May import: every other package of nexus_raft; nothing imports it.
"""

import os

# gRPC's C core writes its own log lines (e.g. "I... Handshake failed ...")
# straight to stderr, outside ``logging``: they broke the programs' one-line
# errors and their JSON logs. Our programs report what matters themselves;
# set before anything imports grpc (an operator's GRPC_VERBOSITY still wins).
os.environ.setdefault("GRPC_VERBOSITY", "ERROR")
