"""The Lua scripts in `engine/lua/`, loaded once and registered on a Redis client."""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from redis.commands.core import AsyncScript

__all__ = ["Scripts", "lua_source"]


# A line `-- include: <name>` stands for the fragment `lua/_<name>.lua`: Redis runs each script
# on its own, so code two scripts share is put into both when they are read.
_INCLUDE = re.compile(r"^-- include: (\w+)\n", re.MULTILINE)


@cache
def lua_source(name: str) -> str:
    """Text of `lua/<name>-<n>.lua` next to this module (the suffix is the number of fixed KEYS),
    with its `-- include:` lines replaced by their fragments."""
    folder = resources.files("workflow_worker.engine").joinpath("lua")
    matches = [p for p in folder.iterdir() if p.name.startswith(name + "-")]
    if len(matches) != 1:
        raise LookupError(f"no single Lua script named {name!r} in workflow_worker/engine/lua")
    text = matches[0].read_text(encoding="utf-8")
    return _INCLUDE.sub(lambda m: folder.joinpath(f"_{m[1]}.lua").read_text("utf-8"), text)


@dataclass(frozen=True, slots=True)
class Scripts:
    """Registered scripts; each call sends EVALSHA and falls back to EVAL once after a restart."""

    claim: AsyncScript
    heartbeat: AsyncScript
    orphans: AsyncScript
    claims_of: AsyncScript
    reap: AsyncScript
    promote: AsyncScript
    apply: AsyncScript
    enqueue: AsyncScript
    cancel: AsyncScript
    requeue_dead: AsyncScript
    purge_dead: AsyncScript
    group: AsyncScript
    add_child: AsyncScript

    @classmethod
    def register(cls, client: Any) -> Scripts:
        return cls(**{name: client.register_script(lua_source(name)) for name in cls.__slots__})
