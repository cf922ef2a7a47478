"""The application's one key: the started :class:`~gateway.runtime.gateway.Gateway`."""

from __future__ import annotations

from aiohttp import web

from gateway.runtime.gateway import Gateway

GATEWAY = web.AppKey("gateway", Gateway)
