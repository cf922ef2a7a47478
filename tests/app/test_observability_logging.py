"""Transcript text, audio and tokens never reach a log line."""

from __future__ import annotations

import json

import pytest
import structlog
from structlog.testing import capture_logs

from gateway.auth.tokens import mint
from gateway.observability.logging import REDACTED, configure_logging, redact
from tests.conftest import GatewayFactory
from tests.support.audio import tone
from tests.support.helpers import connect, open_stream, token

JWT = mint("s" * 32, school_id="s-1", group_id="g-1")


def test_redaction_of_keys_and_shapes() -> None:
    with capture_logs(processors=[redact]) as logs:
        log = structlog.get_logger()
        log.warning(
            "oops",
            text="the child said hello",
            token=JWT,
            audio=b"\x00\x01",
            headers={"Authorization": f"Bearer {JWT}"},
            note=f"url?access_token={JWT}",
            query="listen?resume=abc123.s3cr3tv4lu3&last_seq=4",
            resume_token="abc123.s3cr3tv4lu3",
            key="sk-abcdefghijklmnop",
            webhook_url="https://hooks.slack.com/T/B/secret",
        )
        log.warning(f"message with {JWT} inside")
    first, second = logs
    assert first["text"] == REDACTED and first["token"] == REDACTED
    assert first["audio"] == REDACTED and first["webhook_url"] == REDACTED
    assert first["headers"]["Authorization"] == REDACTED
    assert JWT not in first["note"] and "access_token=" in first["note"]
    assert "sk-abcdefghijklmnop" not in first["key"]
    assert "s3cr3tv4lu3" not in first["query"] and "last_seq=4" in first["query"]
    assert first["resume_token"] == REDACTED
    assert JWT not in second["event"]


async def test_no_text_or_token_in_gateway_logs(
    make_gateway: GatewayFactory, capsys: pytest.CaptureFixture[str]
) -> None:
    configure_logging("debug", "json")
    try:
        server = await make_gateway()
        jwt = token()
        stream = await open_stream(server, jwt, via="query")
        await stream.send_audio(tone(440, 1.0))
        await stream.finish()
        await stream.close()
        bad = await connect(server, jwt + "x")
        await bad.collect()
        await bad.close()
        dropped = await open_stream(server, token(group="g-2"))
        resume_token = dropped.messages[0]["resume_token"]
        query = {"resume": resume_token, "last_seq": "-1"}
        resumed = await open_stream(server, token(group="g-2"), query=query)
        await dropped.collect()
        await dropped.close()
        await resumed.finish()
        await resumed.close()
    finally:
        configure_logging("warning", "json")
    err = capsys.readouterr().err
    lines = [json.loads(line) for line in err.splitlines() if line.startswith("{")]
    events = {line["event"] for line in lines}
    assert {"session.started", "session.ended", "session.rejected"} <= events
    assert all("timestamp" in line and "level" in line for line in lines)
    started = next(line for line in lines if line["event"] == "session.started")
    assert started["session_id"] and started["request_id"]
    assert "tone 440" not in err and "[simulated]" not in err
    assert jwt not in err and jwt.split(".")[1] not in err
    assert "session.resumed" in events and resume_token.split(".")[1] not in err
