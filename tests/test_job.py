"""The job envelope: decoding, validation, unknown fields, and the published JSON Schema."""

from __future__ import annotations

import json
from importlib import resources
from typing import Any

import jsonschema
import pytest

from workflow_worker.engine.job import InvalidJob, decode_job


def schema() -> dict[str, Any]:
    text = resources.files("workflow_worker.engine").joinpath("job.schema.json").read_text()
    loaded: dict[str, Any] = json.loads(text)
    return loaded


def test_minimal_form_gets_defaults() -> None:
    """`{"workflow", "payload"}` alone decodes, with a generated id and attempt 1."""
    job = decode_job(b'{"workflow": "sleep", "payload": {"seconds": 1}}')
    assert job.workflow == "sleep"
    assert job.payload == {"seconds": 1}
    assert job.attempt == 1
    assert job.generated_id
    assert len(job.id) == 32


def test_unknown_fields_are_kept_through_encode() -> None:
    """Fields this package does not know survive a decode/encode round trip."""
    raw = '{"workflow":"w","payload":{},"id":"abc","tenant":"acme","trace":{"span":1}}'
    job = decode_job(raw)
    again = json.loads(job.encode())
    assert again["tenant"] == "acme"
    assert again["trace"] == {"span": 1}
    assert again["id"] == "abc"
    assert not job.generated_id


def test_next_attempt_keeps_identity() -> None:
    """A retry keeps the id and unknown fields and counts the attempt up."""
    job = decode_job('{"workflow":"w","id":"x","attempt":2,"max_attempts":5,"custom":1}')
    nxt = json.loads(job.next_attempt().encode())
    assert (nxt["id"], nxt["attempt"], nxt["max_attempts"], nxt["custom"]) == ("x", 3, 5, 1)


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b"\xff\xfe", "not valid UTF-8"),
        (b"{nope", "not valid JSON"),
        (b"[1, 2]", "not a JSON object"),
        (b'"text"', "not a JSON object"),
        (b"{}", "'workflow' is missing"),
        (b'{"workflow": 5}', "'workflow' is missing"),
        (b'{"workflow": "w", "payload": [1]}', "'payload' must be a JSON object"),
        (b'{"workflow": "w", "attempt": 0}', "'attempt' must be a positive integer"),
        (b'{"workflow": "w", "attempt": true}', "'attempt' must be a positive integer"),
        (b'{"workflow": "w", "timeout": -1}', "'timeout' must be a positive number"),
        (b'{"workflow": "w", "id": ""}', "'id' must be a string"),
        (b'{"workflow": "w", "x": NaN}', "NaN is not allowed"),
        (b"[" * 100_000 + b"]" * 100_000, "nested too deeply"),
    ],
)
def test_invalid_messages_give_a_reason(raw: bytes, reason: str) -> None:
    """Every kind of bad message raises InvalidJob with a readable reason."""
    with pytest.raises(InvalidJob, match=reason.replace("(", r"\(")):
        decode_job(raw)


def test_oversize_message_is_rejected() -> None:
    """A message over the size limit is rejected before parsing."""
    with pytest.raises(InvalidJob, match="over the 100-byte limit"):
        decode_job(b'{"workflow": "w", "payload": {"x": "' + b"a" * 200 + b'"}}', max_bytes=100)


def test_schema_accepts_what_the_decoder_accepts() -> None:
    """The published schema is valid and agrees with the decoder on good and bad examples."""
    sch = schema()
    jsonschema.Draft202012Validator.check_schema(sch)
    good = [
        {"workflow": "w"},
        {"workflow": "w", "payload": {"a": 1}, "id": "j1", "attempt": 2, "max_attempts": 3},
        {"workflow": "w", "timeout": 1.5, "enqueued_at": 1.7e9, "extra": [1]},
    ]
    bad = [
        {},
        {"workflow": ""},
        {"workflow": "w", "payload": []},
        {"workflow": "w", "attempt": 0},
        {"workflow": "w", "timeout": 0},
    ]
    for doc in good:
        jsonschema.validate(doc, sch)
        decode_job(json.dumps(doc))
    for doc in bad:
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(doc, sch)
        with pytest.raises(InvalidJob):
            decode_job(json.dumps(doc))
