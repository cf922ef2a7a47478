"""The JSON API (``/api/v1/...``), health, readiness, metrics and the OpenAPI document."""
