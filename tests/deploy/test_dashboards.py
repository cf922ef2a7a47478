"""The Grafana dashboards: generated, fresh, valid, and querying only exported metrics."""

from __future__ import annotations

import aiohttp

from tests.support.audio import tone
from tests.support.helpers import GatewayServer, stream_and_close
from tests.support.monitoring import (
    DASHBOARDS,
    dashboards,
    exported_names,
    generator,
    metric_names,
    panel_queries,
    recorded_names,
)

REQUIRED = {"overview", "streaming", "upstream", "finops", "slo"}


def test_generated_json_is_fresh() -> None:
    gen = generator()
    for name in gen.DASHBOARDS:
        committed = (DASHBOARDS / "grafana" / f"{name}.json").read_text()
        assert committed == gen.render(name), (
            f"dashboards/grafana/{name}.json is stale: run `make dashboards`"
        )


def test_dashboards_are_valid_with_fixed_unique_uids() -> None:
    boards = dashboards()
    assert set(boards) >= REQUIRED
    uids = [b["uid"] for b in boards.values()]
    assert len(set(uids)) == len(uids)
    assert all(uid.startswith("stt-") for uid in uids)
    for board in boards.values():
        assert board["title"].startswith("stt-gateway")
        panels = [p for p in board["panels"] if p["type"] != "row"]
        assert panels
        for panel in panels:
            assert panel["datasource"]["uid"] == "stt-prometheus"
            assert panel["targets"], panel["title"]


def test_dashboards_cover_what_operators_need() -> None:
    titles = {name: {p["title"] for p in b["panels"]} for name, b in dashboards().items()}
    assert {
        "HTTP 5xx ratio",
        "HTTP latency p50 / p95 / p99",
        "Active sessions",
        "Stream restarts",
    } <= titles["overview"]
    assert {
        "Pending audio (buffer depth)",
        "Transcript latency histogram",
        "Windows by status",
    } <= titles["streaming"]
    assert {
        "429s (rate limited)",
        "Circuit state",
        "Model distribution",
        "Whisper latency p50 / p95 / p99 by model",
    } <= titles["upstream"]
    assert {
        "Spend by model (USD/hour)",
        "Top schools by spend today",
        "Budget utilisation",
        "Projected end-of-day spend",
    } <= titles["finops"]
    assert {"Window availability", "Error budget remaining (30d)"} <= titles["slo"]


async def test_every_query_uses_exported_metrics(gateway: GatewayServer) -> None:
    await stream_and_close(gateway, tone(440, 1.0))
    async with aiohttp.ClientSession() as session, session.get(gateway.http + "/metrics") as r:
        exported = exported_names(await r.text())
    exported |= {n.rsplit("_bucket", 1)[0] for n in exported}
    recorded = recorded_names()
    missing = []
    for board, title, expr in panel_queries():
        for name in metric_names(expr):
            known = name in recorded if ":" in name else name in exported
            if not known:
                missing.append(f"{board} / {title}: {name}")
    assert not missing, missing
