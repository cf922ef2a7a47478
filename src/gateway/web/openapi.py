"""The OpenAPI 3.1 description of the HTTP API."""

from __future__ import annotations

from typing import Any

from gateway import __version__

_ERROR = {"$ref": "#/components/schemas/Error"}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


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
                        )
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
