"""What the gateway says about its own load during a capacity step, sampled from outside:
its event loop's lag (``stt_event_loop_lag_seconds``), its CPU per wall second (``/proc``),
the audio waiting for Whisper (``stt_pending_audio_seconds``), whether it was saturated
(``stt_saturated``) and the streams it refused — to see which signal tracks the admitted
streams' latency."""

from __future__ import annotations

import threading
import time
import urllib.request
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from loadtest.capacity_servers import cpu_seconds

EVERY_SECONDS = 0.5


def scrape(port: int) -> dict[str, Any]:
    """The samples of interest, by name (histogram buckets by their ``le``)."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        text = response.read().decode()
    out: dict[str, Any] = {"lag_buckets": {}}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "stt_event_loop_lag_seconds_bucket":
                out["lag_buckets"][float(sample.labels["le"])] = sample.value
            elif sample.name in (
                "stt_event_loop_lag_seconds_sum",
                "stt_event_loop_lag_seconds_count",
            ):
                out[sample.name.rsplit("_", 1)[1]] = sample.value
            elif sample.name in ("stt_pending_audio_seconds", "stt_saturated"):
                out[sample.name] = sample.value
            elif sample.name == "stt_admission_refused_total":
                out["refused"] = out.get("refused", 0.0) + sample.value
    return out


class Signals:
    """Samples the gateway on ``port`` (process ``pid``) every :data:`EVERY_SECONDS` in a
    thread, between :meth:`start` and :meth:`stop`."""

    def __init__(self, port: int, pid: int) -> None:
        self._port, self._pid = port, pid
        self._samples: list[dict[str, Any]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                sample = scrape(self._port)
            except OSError:
                sample = None
            if sample is not None:
                sample["t"], sample["cpu"] = time.monotonic(), cpu_seconds(self._pid)
                self._samples.append(sample)
            self._stop.wait(EVERY_SECONDS)

    def stop(self) -> dict[str, Any]:
        """What the step showed."""
        self._stop.set()
        self._thread.join(timeout=10)
        return summary(self._samples)


def summary(samples: list[dict[str, Any]]) -> dict[str, Any]:
    if len(samples) < 2:
        return {}
    first, last = samples[0], samples[-1]
    wall = last["t"] - first["t"]
    count = last.get("count", 0.0) - first.get("count", 0.0)
    buckets = {le: n - first["lag_buckets"].get(le, 0.0) for le, n in last["lag_buckets"].items()}
    p99 = next((le for le in sorted(buckets) if buckets[le] >= 0.99 * count), float("inf"))
    pending = [s.get("stt_pending_audio_seconds", 0.0) for s in samples]
    saturated = [s for s in samples if s.get("stt_saturated")]
    return {
        "loop_lag_mean_ms": round(
            (last.get("sum", 0) - first.get("sum", 0)) / max(1, count) * 1000, 1
        ),
        "loop_lag_p99_under_ms": p99 * 1000,
        "cpu_per_wall": round((last["cpu"] - first["cpu"]) / max(wall, 1e-9), 2),
        "pending_audio_mean_s": round(sum(pending) / len(pending), 1),
        "pending_audio_max_s": round(max(pending), 1),
        "saturated_share": round(len(saturated) / len(samples), 2),
        "refused": int(last.get("refused", 0) - first.get("refused", 0)),
    }
