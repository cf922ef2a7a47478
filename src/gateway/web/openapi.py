"""The OpenAPI 3.1 description of the HTTP API."""

from __future__ import annotations

from typing import Any

from gateway import __version__

_ERROR = {"$ref": "#/components/schemas/Error"}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


_OPENAI_ERROR = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["message", "type", "code"],
            "properties": {
                "message": {"type": "string"},
                "type": {"type": "string"},
                "param": {"type": ["string", "null"]},
                "code": {"type": ["string", "null"]},
            },
        }
    },
}
_SECURED: list[dict[str, list[str]]] = [{"bearer": []}]
_SCHOOL = [{"name": "school_id", "in": "path", "required": True, "schema": {"type": "string"}}]


def _errors(*codes: int) -> dict[str, Any]:
    names = {
        400: "Validation error",
        401: "Missing or invalid token",
        403: "Not allowed for this token",
        413: "Body over 1 MiB",
        429: "Too many failed authentications from this address (Retry-After)",
        503: "Ledger unreachable",
    }
    return {str(c): _json(_ERROR, names[c]) for c in (*codes, 429)}


def _op(
    summary: str,
    op_id: str,
    ok: dict[str, Any],
    *errors: int,
    body: dict[str, Any] | None = None,
    params: list[dict[str, Any]] | None = None,
    status: int = 200,
) -> dict[str, Any]:
    op: dict[str, Any] = {
        "summary": summary,
        "operationId": op_id,
        "security": _SECURED,
        "responses": {str(status): _json(ok, "OK"), **_errors(*errors)},
    }
    if body is not None:
        op["requestBody"] = {"required": True, "content": {"application/json": {"schema": body}}}
    if params:
        op["parameters"] = params
    return op


def _page_paths() -> dict[str, Any]:
    """The web pages and their static files (docs/Pages.md)."""

    def html(summary: str, operation: str) -> dict[str, Any]:
        return {
            "get": {
                "summary": summary,
                "operationId": operation,
                "responses": {
                    "200": {
                        "description": "The page (its token comes in the URL fragment)",
                        "content": {"text/html": {"schema": {"type": "string"}}},
                    }
                },
            }
        }

    return {
        "/classroom": html("The classroom page: stream a group's microphone", "classroomPage"),
        "/teacher": html("The teacher's page: budget, alerts, live groups, links", "teacherPage"),
        "/admin": html("The admin page: budget settings, every school", "adminPage"),
        "/favicon.ico": {
            "get": {
                "summary": "The pages' icon (SVG)",
                "operationId": "favicon",
                "responses": {"200": {"description": "The icon"}},
            }
        },
        "/static/{name}": {
            "get": {
                "summary": "A page's script or stylesheet",
                "operationId": "staticFile",
                "parameters": [
                    {"name": "name", "in": "path", "required": True, "schema": {"type": "string"}}
                ],
                "responses": {
                    "200": {"description": "The file"},
                    "304": {"description": "Not modified"},
                    "404": {"description": "No such file"},
                },
            }
        },
    }


def _budget_paths() -> dict[str, Any]:
    from gateway.web.alerts_api import ALERTS_SCHEMA
    from gateway.web.settings_api import BUDGET_SCHEMA
    from gateway.web.tokens_api import TOKEN_SCHEMA

    budget = {"$ref": "#/components/schemas/Budget"}
    usage = {"$ref": "#/components/schemas/Usage"}
    alerts = {
        "type": "object",
        "properties": {
            "thresholds": {"type": "array", "items": {"type": "integer"}},
            "webhook_configured": {"type": "boolean"},
            "fired": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {
                        "threshold": {"type": "integer"},
                        "date": {"type": "string"},
                        "fired_at": {"type": "string"},
                        "percent_used": {"type": "number"},
                    },
                },
            },
        },
    }
    date_param = {
        "name": "date",
        "in": "query",
        "required": False,
        "schema": {"type": "string", "format": "date"},
    }
    return {
        "/api/v1/tokens": {
            "post": _op(
                "Mint a short-lived student stream token (teacher+)",
                "issueToken",
                {
                    "type": "object",
                    "properties": {
                        "token": {"type": "string"},
                        "expires_at": {"type": "string"},
                        "url": {"type": "string"},
                    },
                },
                400,
                401,
                403,
                413,
                body=TOKEN_SCHEMA,
                status=201,
            )
        },
        "/api/v1/schools/{school_id}/sessions": {
            "get": _op(
                "The school's open streams on every replica, never text (teacher+)",
                "listSessions",
                {
                    "type": "object",
                    "properties": {
                        "sessions": {
                            "type": "array",
                            "items": {
                                "type": "object",
                                "properties": {
                                    "session_id": {"type": "string"},
                                    "group_id": {"type": "string"},
                                    "started_at": {"type": "string"},
                                    "audio_seconds": {"type": "number"},
                                    "windows": {
                                        "type": "object",
                                        "properties": {
                                            k: {"type": "integer"}
                                            for k in ("ok", "silence", "dropped")
                                        },
                                    },
                                    "model": {"type": "string"},
                                },
                            },
                        }
                    },
                },
                401,
                403,
                503,
                params=_SCHOOL,
            )
        },
        "/api/v1/schools/{school_id}/budget": {
            "get": _op(
                "A school's budget settings (teacher+)",
                "getBudget",
                budget,
                401,
                403,
                params=_SCHOOL,
            ),
            "put": _op(
                "Change a school's budget settings (school_admin+)",
                "putBudget",
                budget,
                400,
                401,
                403,
                413,
                503,
                body=BUDGET_SCHEMA,
                params=_SCHOOL,
            ),
            "delete": _op(
                "Return a school to its policy values (school_admin+); the webhook stays",
                "deleteBudget",
                budget,
                401,
                403,
                503,
                params=_SCHOOL,
            ),
        },
        "/api/v1/schools/{school_id}/budget/usage": {
            "get": _op(
                "Usage today in the school's timezone, or on ?date (teacher+)",
                "getUsage",
                usage,
                400,
                401,
                403,
                503,
                params=[*_SCHOOL, date_param],
            )
        },
        "/api/v1/schools/{school_id}/budget/alerts": {
            "get": _op(
                "Alert thresholds, webhook and fired alerts (teacher+)",
                "getAlerts",
                alerts,
                401,
                403,
                503,
                params=_SCHOOL,
            ),
            "put": _op(
                "Change thresholds or webhook (school_admin+)",
                "putAlerts",
                alerts,
                400,
                401,
                403,
                413,
                503,
                body=ALERTS_SCHEMA,
                params=_SCHOOL,
            ),
        },
        "/api/v1/budget/usage": {
            "get": _op(
                "Every school with spend today, with global, district and model scopes "
                "(platform_admin)",
                "getGlobalUsage",
                {
                    "type": "object",
                    "properties": {
                        "date": {"type": "string"},
                        "scopes": {"type": "array"},
                        "schools": {"type": "array", "items": usage},
                    },
                },
                401,
                403,
                503,
            )
        },
        "/v1/audio/transcriptions": {
            "post": {
                "summary": "OpenAI-compatible transcription with the gateway's budget and breaker",
                "operationId": "createTranscription",
                "security": _SECURED,
                "requestBody": {
                    "required": True,
                    "content": {
                        "multipart/form-data": {
                            "schema": {
                                "type": "object",
                                "required": ["file"],
                                "properties": {
                                    "file": {
                                        "type": "string",
                                        "contentMediaType": "application/octet-stream",
                                    },
                                    "model": {"type": "string"},
                                    "language": {"type": "string"},
                                    "prompt": {"type": "string"},
                                    "response_format": {"enum": ["json", "text"]},
                                },
                            }
                        }
                    },
                },
                "responses": {
                    "200": {
                        "description": "The transcript (text/plain with response_format=text)",
                        "content": {
                            "application/json": {
                                "schema": {
                                    "type": "object",
                                    "properties": {"text": {"type": "string"}},
                                }
                            },
                            "text/plain": {"schema": {"type": "string"}},
                        },
                    },
                    **{
                        str(status): _json(_OPENAI_ERROR, description)
                        for status, description in (
                            (400, "Bad form, file or model"),
                            (401, "Missing or invalid token"),
                            (403, "The token names no school"),
                            (413, "File over 25 MB"),
                            (
                                429,
                                "Budget exhausted (BUDGET_EXCEEDED), upstream quota "
                                "(UPSTREAM_QUOTA), rate limited, or too many failed "
                                "authentications",
                            ),
                            (502, "The upstream rejected the request"),
                            (503, "Ledger or upstream unavailable"),
                        )
                    },
                },
            }
        },
    }


def document() -> dict[str, Any]:
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "stt-gateway",
            "version": __version__,
            "description": "Classroom speech-to-text gateway. The streaming protocol "
            "(GET /api/v1/listen, WebSocket) is described in "
            "docs/Protocol.md.",
        },
        "paths": {
            "/": {
                "get": {
                    "summary": "What this gateway is, its provider, and where its API is: "
                    "the page for a browser (Accept: text/html), JSON otherwise",
                    "operationId": "index",
                    "responses": {
                        "200": {
                            "description": "An index of the API, or the home page",
                            "content": {
                                "application/json": {"schema": {"type": "object"}},
                                "text/html": {"schema": {"type": "string"}},
                            },
                        }
                    },
                }
            },
            **_page_paths(),
            "/api/v1/health": {
                "get": {
                    "summary": "Liveness",
                    "operationId": "health",
                    "responses": {
                        "200": _json(
                            {
                                "type": "object",
                                "properties": {"status": {"type": "string", "const": "ok"}},
                            },
                            "The event loop runs.",
                        ),
                        "503": _json(
                            {"type": "object", "properties": {"status": {"const": "failing"}}},
                            "The embedded Redis has been down too long: restart the gateway.",
                        ),
                    },
                }
            },
            "/api/v1/ready": {
                "get": {
                    "summary": "Readiness with Whisper, Redis and policy checks",
                    "operationId": "ready",
                    "responses": {
                        "200": _json({"$ref": "#/components/schemas/Ready"}, "ready or degraded"),
                        "503": _json({"$ref": "#/components/schemas/Ready"}, "not ready"),
                    },
                }
            },
            "/metrics": {
                "get": {
                    "summary": "Prometheus metrics",
                    "operationId": "metrics",
                    "responses": {
                        "200": {
                            "description": "Prometheus text format",
                            "content": {"text/plain": {"schema": {"type": "string"}}},
                        }
                    },
                }
            },
            "/api/v1/openapi.json": {
                "get": {
                    "summary": "This document",
                    "operationId": "openapi",
                    "responses": {"200": _json({"type": "object"}, "OpenAPI 3.1")},
                }
            },
            "/api/v1/listen": {
                "get": {
                    "summary": "Streaming transcription (WebSocket upgrade; see docs/Protocol.md)",
                    "operationId": "listen",
                    "responses": {
                        "101": {"description": "Switching protocols"},
                        "403": _json(_ERROR, "Origin not allowed"),
                    },
                }
            },
            **_budget_paths(),
        },
        "components": {
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}
            },
            "schemas": {
                "Error": {
                    "type": "object",
                    "required": ["error"],
                    "properties": {
                        "error": {
                            "type": "object",
                            "required": ["code", "message", "request_id"],
                            "properties": {
                                "code": {"type": "string"},
                                "message": {"type": "string"},
                                "request_id": {"type": "string"},
                                "details": {"type": "array"},
                            },
                        }
                    },
                },
                "Budget": {
                    "type": "object",
                    "properties": {
                        "school_id": {"type": "string"},
                        "daily_limit_usd": {"type": "number"},
                        "timezone": {"type": "string"},
                        "alert_thresholds": {"type": "array", "items": {"type": "integer"}},
                        "district_id": {"type": ["string", "null"]},
                        "source": {"enum": ["policy", "override"]},
                    },
                },
                "Usage": {
                    "type": "object",
                    "properties": {
                        "school_id": {"type": "string"},
                        "date": {"type": "string"},
                        "timezone": {"type": "string"},
                        "daily_limit_usd": {"type": "number"},
                        "spent_usd": {"type": "number"},
                        "reserved_usd": {"type": "number"},
                        "remaining_usd": {"type": "number"},
                        "percent_used": {"type": "number"},
                        "audio_seconds": {"type": "number"},
                        "by_model": {"type": "object"},
                        "status": {"enum": ["ok", "warning", "exceeded"]},
                        "enforcement_mode": {"enum": ["strict", "advisory", "disabled"]},
                    },
                },
                "Ready": {
                    "type": "object",
                    "required": ["status", "draining", "checks"],
                    "properties": {
                        "status": {"enum": ["ready", "degraded", "not_ready"]},
                        "draining": {"type": "boolean"},
                        "checks": {"type": "object"},
                    },
                },
            },
        },
    }
