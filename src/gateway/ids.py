"""School, group and district ids: 1–64 characters of ``A-Z a-z 0-9 . _ -`` (pure).

Ids become parts of Redis keys, metric labels, log fields and URLs, so only
these characters are ever accepted: when a token is read or minted (API and
command line) and when a policy is loaded.
"""

from __future__ import annotations

import re

ID_PATTERN = "^[A-Za-z0-9._-]{1,64}$"
ID_RULE = "1-64 characters of A-Z a-z 0-9 . _ -"
_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")


def valid_id(value: object) -> bool:
    return isinstance(value, str) and _ID.fullmatch(value) is not None


def check_id(value: str, name: str) -> str:
    """``value`` if it is a valid id, else :class:`ValueError` naming ``name``."""
    if not valid_id(value):
        raise ValueError(f"{name} must be {ID_RULE}")
    return value
