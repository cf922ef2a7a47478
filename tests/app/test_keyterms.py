"""Class vocabulary: limits, the token claim, the query parameter, the prompt Whisper gets."""

from __future__ import annotations

import aiohttp
import pytest

from gateway.auth.tokens import mint, verify
from gateway.errors import BadConfig, InvalidToken
from gateway.keyterms import (
    MAX_VOCABULARY_PROMPT_CHARS,
    BadKeyterms,
    check_terms,
    merge,
    query_terms,
    vocabulary_prompt,
    window_prompt,
)
from tests.conftest import GatewayFactory
from tests.support.audio import tone
from tests.support.helpers import SECRET, GatewayServer, connect, token


def test_terms_are_cleaned_and_limited() -> None:
    assert check_terms(["  Omar ", "photo  synthesis"], "keyterms") == ("Omar", "photo synthesis")
    with pytest.raises(BadKeyterms, match="at most 50"):
        check_terms(["x"] * 51, "keyterms")
    with pytest.raises(BadKeyterms, match="1 to 50"):
        check_terms(["x" * 51], "keyterms")
    with pytest.raises(BadKeyterms, match="1 to 50"):
        check_terms(["   "], "keyterms")
    with pytest.raises(BadKeyterms, match="text"):
        check_terms([3], "keyterms")
    with pytest.raises(BadKeyterms, match="control"):
        check_terms(["a\x00b"], "keyterms")
    with pytest.raises(BadConfig, match="keyterm"):
        query_terms(["x" * 60])


def test_merge_keeps_order_drops_repeats_and_caps() -> None:
    assert merge(["Omar", "Priya"], ["priya", "Aisha"]) == ("Omar", "Priya", "Aisha")
    assert len(merge([f"a{i}" for i in range(40)], [f"b{i}" for i in range(40)])) == 50


def test_the_vocabulary_prompt_fits_whispers_prompt() -> None:
    assert vocabulary_prompt(["Omar", "Priya", "photosynthesis"]) == (
        "Omar, Priya, photosynthesis."
    )
    assert vocabulary_prompt([]) == ""
    long = vocabulary_prompt([f"{i:02d}" + "x" * 47 for i in range(50)])
    assert len(long) <= MAX_VOCABULARY_PROMPT_CHARS + 1 and long.startswith("00")
    assert window_prompt("Omar.", "and then") == "Omar. and then"
    assert window_prompt("", "") is None


def test_the_token_claim_round_trips_and_is_checked() -> None:
    jwt = mint(SECRET, school_id="s", group_id="g", keyterms=["Omar", "Priya"])
    assert verify(jwt, SECRET).keyterms == ("Omar", "Priya")
    assert verify(mint(SECRET, school_id="s", group_id="g"), SECRET).keyterms == ()
    import jwt as pyjwt

    bad = pyjwt.encode(
        {"role": "student", "school_id": "s", "group_id": "g", "exp": 2**40, "keyterms": "Omar"},
        SECRET,
        algorithm="HS256",
    )
    with pytest.raises(InvalidToken, match="keyterms"):
        verify(bad, SECRET)


async def _two_windows(server: GatewayServer, jwt: str, query: list[tuple[str, str]]) -> None:
    stream = await connect(server, jwt, query=query)
    assert (await stream.next())["type"] == "Begin"
    await stream.send_audio(tone(440, 1.0))
    await stream.send_json({"type": "Finalize"})
    assert (await stream.next())["status"] == "ok"
    await stream.send_audio(tone(660, 1.0))
    await stream.finish()
    await stream.close()


async def test_vocabulary_reaches_whisper_as_the_prompt(gateway: GatewayServer) -> None:
    jwt = token(keyterms=["Omar", "photosynthesis"])
    await _two_windows(gateway, jwt, [("keyterm", "Priya"), ("keyterm", "omar")])
    prompts = [r.prompt for r in gateway.fake.received]
    # continuity is off by default: every window gets the vocabulary alone
    assert prompts == ["Omar, photosynthesis, Priya."] * 2


async def test_vocabulary_then_the_previous_text(make_gateway: GatewayFactory) -> None:
    server = await make_gateway(STT_PROMPT_CONTINUITY=True)
    await _two_windows(server, token(), [("keyterm", "Aisha")])
    first, second = [r.prompt for r in server.fake.received]
    assert first == "Aisha."
    assert second == f"Aisha. {server.fake.received[0].text}"


async def test_a_bad_keyterm_is_bad_config(gateway: GatewayServer) -> None:
    stream = await connect(gateway, token(), query=[("keyterm", "x" * 51)])
    error = await stream.next()
    assert error["type"] == "Error" and error["code"] == "BAD_CONFIG"
    assert "keyterm" in error["message"] and "x" * 20 not in error["message"]
    await stream.collect()
    assert stream.close_code == 4000
    await stream.close()


async def test_teachers_mint_group_links_with_vocabulary(gateway: GatewayServer) -> None:
    teacher = token(role="teacher")
    url = f"{gateway.http}/api/v1/tokens"
    headers = {"Authorization": f"Bearer {teacher}"}
    async with aiohttp.ClientSession() as session:
        body = {"group_id": "g-9", "keyterms": ["Rivera", "fractions"]}
        async with session.post(url, json=body, headers=headers) as resp:
            assert resp.status == 201
            minted = (await resp.json())["token"]
        assert verify(minted, SECRET).keyterms == ("Rivera", "fractions")
        for terms in (["x"] * 51, ["y" * 51], [""]):
            async with session.post(
                url, json={"group_id": "g", "keyterms": terms}, headers=headers
            ) as resp:
                assert resp.status == 400
                doc = await resp.json()
                assert doc["error"]["code"] == "VALIDATION_ERROR"
    audit = gateway.state.audit.path.read_text()
    assert "Rivera" not in audit and '"keyterms":2' in audit
