"""nexus_raft.cli: the typer programs behind ``bin/`` and the console scripts.

``node`` (``nexus-node``), ``witness`` (``nexus-witness``), ``ctl``
(``nexusctl``), ``store`` (``nexus-store``) and ``common`` (shared option
parsing, logging set-up and one-line errors).

May import: every other package of nexus_raft; nothing imports it.
"""
