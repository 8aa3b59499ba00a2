"""Test access to the local stack's real servers (see workflow_worker/local/devstack.py)."""

from workflow_worker.local.devstack import RedisServer, free_port, server_binary

__all__ = ["RedisServer", "free_port", "server_binary"]
