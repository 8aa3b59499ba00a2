"""What the console shows of a payload: named fields masked, then the text cut to a size."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from typing import Any

__all__ = ["MASK", "capped", "redacted", "redacted_text", "shown_payload"]

MASK = "[redacted]"


def redacted(value: Any, names: frozenset[str]) -> Any:
    """`value` with every field whose name is in `names` (lowercase) masked, at any depth."""
    if isinstance(value, dict):
        return {
            key: MASK if str(key).lower() in names else redacted(item, names)
            for key, item in value.items()
        }
    if isinstance(value, list):
        return [redacted(item, names) for item in value]
    return value


def capped(text: str, limit: int) -> tuple[str, bool]:
    """`text` cut to at most `limit` UTF-8 bytes (on a character boundary); whether it was cut."""
    data = text.encode("utf-8", "surrogatepass")
    if len(data) <= limit:
        return text, False
    return data[:limit].decode("utf-8", "ignore"), True


def shown_payload(payload: Any, names: Iterable[str], limit: int) -> dict[str, Any]:
    """The payload as the console shows it: redacted, pretty JSON, at most `limit` bytes."""
    text = json.dumps(redacted(payload, frozenset(names)), indent=2, ensure_ascii=False)
    size = len(text.encode("utf-8", "surrogatepass"))
    shown, cut = capped(text, limit)
    return {"text": shown, "truncated": cut, "bytes": size}


def redacted_text(text: str, names: Iterable[str], limit: int) -> dict[str, Any]:
    """A JSON text as the console shows it: parsed and redacted when it parses, else with the
    string values of named fields masked in place (a message cut to its head, or malformed)."""
    wanted = frozenset(names)
    try:
        return shown_payload(json.loads(text), wanted, limit)
    except ValueError:
        pass
    for name in wanted:
        pattern = re.compile(r'("' + re.escape(name) + r'"\s*:\s*)"(?:[^"\\]|\\.)*"?', re.I)
        text = pattern.sub(lambda m: m.group(1) + '"' + MASK + '"', text)
    size = len(text.encode("utf-8", "surrogatepass"))
    shown, cut = capped(text, limit)
    return {"text": shown, "truncated": cut, "bytes": size}
