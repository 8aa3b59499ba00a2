"""Test access to the local stack's real servers (see worker/devstack.py)."""

from worker.devstack import RedisServer, free_port, server_binary

__all__ = ["RedisServer", "free_port", "server_binary"]
