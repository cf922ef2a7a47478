"""HS256 JWTs: minting and verification (PyJWT), and the claims we rely on."""

from __future__ import annotations

import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import jwt

from gateway.errors import BadKeyterms, InvalidToken
from gateway.ids import check_id, valid_id
from gateway.keyterms import check_terms

ROLES = ("student", "teacher", "school_admin", "platform_admin")
ALGORITHM = "HS256"
#: ``TOKEN_MAX_TTL_SECONDS`` by default: the longest token minted or honoured.
DEFAULT_MAX_TTL_SECONDS = 86400


#: 9999-12-31T23:59:59Z: the last instant a datetime can hold.
MAX_EXP = 253402300799


@dataclass(frozen=True, slots=True)
class Claims:
    sub: str
    role: str
    school_id: str | None
    group_id: str | None
    district_id: str | None
    exp: int
    #: The class vocabulary a stream token carries (names, subject words).
    keyterms: tuple[str, ...] = ()

    @property
    def expires_at(self) -> datetime:
        return datetime.fromtimestamp(self.exp, UTC)


def mint(
    secret: str,
    *,
    school_id: str | None,
    group_id: str | None = None,
    role: str = "student",
    ttl_seconds: int = 3600,
    district_id: str | None = None,
    sub: str | None = None,
    now: float | None = None,
    keyterms: Sequence[str] = (),
    max_ttl_seconds: int | None = None,
) -> str:
    """A signed token. Ids must be valid (:mod:`gateway.ids`) and ``ttl_seconds`` at most
    ``max_ttl_seconds`` when given; else :class:`ValueError`."""
    if role not in ROLES:
        raise ValueError(f"role must be one of {', '.join(ROLES)}")
    if max_ttl_seconds is not None and ttl_seconds > max_ttl_seconds:
        raise ValueError(f"the ttl must be at most {max_ttl_seconds} s (TOKEN_MAX_TTL_SECONDS)")
    issued = int(now if now is not None else time.time())
    payload: dict[str, Any] = {
        "sub": sub or f"{role}:{uuid.uuid4().hex[:12]}",
        "role": role,
        "iat": issued,
        "exp": issued + ttl_seconds,
    }
    for key, value in (
        ("school_id", school_id),
        ("group_id", group_id),
        ("district_id", district_id),
    ):
        if value is not None:
            payload[key] = check_id(value, key)
    if keyterms:
        payload["keyterms"] = list(check_terms(keyterms, "keyterms"))
    return jwt.encode(payload, secret, algorithm=ALGORITHM)


def verify(
    token: str | None,
    secret: str,
    *,
    require_group: bool = False,
    max_ttl_seconds: int | None = DEFAULT_MAX_TTL_SECONDS,
    now: float | None = None,
) -> Claims:
    """Verify signature, expiry and claims; raise :class:`InvalidToken` with a safe reason.

    An ``exp`` further away than ``max_ttl_seconds`` is treated as that bound (the session
    expires then); ids that are not :mod:`gateway.ids` ids are refused."""
    if not token:
        raise InvalidToken("missing token")
    required = ["exp", "role"]
    try:
        payload = jwt.decode(
            token, secret, algorithms=[ALGORITHM], options={"require": required}, leeway=0
        )
    except jwt.ExpiredSignatureError:
        raise InvalidToken("token expired") from None
    except jwt.MissingRequiredClaimError as exc:
        raise InvalidToken(f"token lacks the {exc.claim} claim") from None
    except jwt.InvalidTokenError:
        raise InvalidToken("invalid token") from None
    exp = payload["exp"]
    if isinstance(exp, bool) or not isinstance(exp, int | float) or exp != exp:
        raise InvalidToken("token has an invalid exp claim")
    if max_ttl_seconds is not None:
        exp = min(exp, int(now if now is not None else time.time()) + max_ttl_seconds)
    elif exp >= MAX_EXP:
        raise InvalidToken("token has an invalid exp claim")
    role = payload.get("role")
    if role not in ROLES:
        raise InvalidToken("token has an unknown role")
    school = _text(payload, "school_id")
    group = _text(payload, "group_id")
    if school is None and role != "platform_admin":
        raise InvalidToken("token lacks the school_id claim")
    if require_group and (group is None or school is None):
        raise InvalidToken("token lacks the school_id or group_id claim")
    return Claims(
        sub=str(payload.get("sub") or f"{role}:anonymous"),
        role=role,
        school_id=school,
        group_id=group,
        district_id=_text(payload, "district_id"),
        exp=int(exp),
        keyterms=_keyterms(payload),
    )


def _keyterms(payload: dict[str, Any]) -> tuple[str, ...]:
    value = payload.get("keyterms")
    if value is None:
        return ()
    if not isinstance(value, list):
        raise InvalidToken("token has an invalid keyterms claim")
    try:
        return check_terms(value, "keyterms")
    except BadKeyterms:
        raise InvalidToken("token has an invalid keyterms claim") from None


def _text(payload: dict[str, Any], key: str) -> str | None:
    value = payload.get(key)
    if value is None:
        return None
    if not valid_id(value):
        raise InvalidToken(f"token has an invalid {key} claim")
    return str(value)
