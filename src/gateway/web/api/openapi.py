"""The OpenAPI 3.1 description of the HTTP API: ``openapi.json`` beside this module.

The file is data; the code fills in what it must not repeat — the version, and
the request-body schemas the handlers validate with (so the description and
the validation cannot drift apart). A test checks it against the app's routes.
"""

from __future__ import annotations

import copy
import functools
import json
from importlib import resources
from typing import Any

from gateway import __version__


@functools.cache
def _data() -> dict[str, Any]:
    text = resources.files("gateway.web.api").joinpath("openapi.json").read_text("utf-8")
    document: dict[str, Any] = json.loads(text)
    return document


def request_schemas() -> dict[str, dict[str, Any]]:
    """The request bodies, as the handlers validate them."""
    from gateway.web.api.alerts import ALERTS_SCHEMA
    from gateway.web.api.settings import BUDGET_SCHEMA
    from gateway.web.api.tokens import REDEEM_SCHEMA, TOKEN_SCHEMA

    return {
        "TokenRequest": TOKEN_SCHEMA,
        "RedeemRequest": REDEEM_SCHEMA,
        "BudgetRequest": BUDGET_SCHEMA,
        "AlertsRequest": ALERTS_SCHEMA,
    }


def document() -> dict[str, Any]:
    doc = copy.deepcopy(_data())
    doc["info"]["version"] = __version__
    doc["components"]["schemas"].update(copy.deepcopy(request_schemas()))
    from gateway.web.api.tokens import KEYTERM  # the listen query's terms, as the tokens'

    doc["components"]["schemas"]["Keyterm"] = copy.deepcopy(KEYTERM)
    return doc
