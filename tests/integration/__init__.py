"""Process tests: real nexus-node clusters on 127.0.0.1."""
