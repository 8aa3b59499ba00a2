"""What the console shows of payloads and results: named fields masked at any depth, texts cut
on a character boundary, and messages that are not JSON masked in place."""

from __future__ import annotations

import json

import pytest

from workflow_worker.console.redact import MASK, capped, redacted, redacted_text, shown_payload
from workflow_worker.errors import ConfigError
from workflow_worker.settings import Settings

NAMES = frozenset({"password", "api_key"})


def test_named_fields_are_masked_at_any_depth_whatever_their_case() -> None:
    """Fields named in the list are masked in nested objects and lists; others are kept."""
    value = {"Password": "p", "user": {"api_key": "k", "items": [{"password": 1}, "x"]}}
    assert redacted(value, NAMES) == {
        "Password": MASK,
        "user": {"api_key": MASK, "items": [{"password": MASK}, "x"]},
    }


def test_texts_are_cut_on_a_character_boundary() -> None:
    """A cut never splits a multi-byte character and says whether it cut."""
    assert capped("héllo", 100) == ("héllo", False)
    text, cut = capped("ééé", 3)
    assert (text, cut) == ("é", True)


def test_shown_payload_reports_its_full_size() -> None:
    """The shown payload carries the size of the whole redacted text."""
    shown = shown_payload({"a": "x" * 100}, NAMES, 20)
    assert shown["truncated"] is True
    assert shown["bytes"] > 100
    assert len(shown["text"].encode()) <= 20


def test_a_message_that_is_not_json_is_masked_in_place() -> None:
    """A message cut to its head (not valid JSON) still has its named string values masked."""
    head = json.dumps({"id": "j", "payload": {"password": "hunter2", "n": 1}})[:-5]
    shown = redacted_text(head, NAMES, 1000)
    assert "hunter2" not in shown["text"]
    assert f'"password": "{MASK}"' in shown["text"]


def test_console_settings_are_checked_when_read() -> None:
    """Bad console and index settings fail naming their variable; the list is lowercased."""
    settings = Settings.from_env({"WORKER_CONSOLE_REDACT": "Password, Card_Number"})
    assert settings.console_redact == ("password", "card_number")
    with pytest.raises(ConfigError, match="WORKER_RECENT_JOBS"):
        Settings.from_env({"WORKER_RECENT_JOBS": "-1"})
    with pytest.raises(ConfigError, match="WORKER_CONSOLE_PASSWORD"):
        Settings.from_env({"WORKER_CONSOLE_PASSWORD": "short"})
    with pytest.raises(ConfigError, match="WORKER_CONSOLE_PORT"):
        Settings.from_env({"WORKER_CONSOLE_PORT": "99999"})
