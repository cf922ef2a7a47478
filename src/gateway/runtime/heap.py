"""The process's heap after start-up: frozen, so the collector's full passes skip it.

Everything alive once the gateway listens — its modules, the SDKs' classes and schemas, a
local model's Python side — lives as long as the process. CPython's full (oldest
generation) collection walks every tracked object each time it runs, and with those
objects in it one pass held the event loop 90–190 ms with 150 streams open: a turn the
loop's lag (and so admission) took for load (docs/Scaling.md, "Admission"). Frozen, they
sit in the permanent generation the collector never walks; what streams leave behind is
collected as before.
"""

from __future__ import annotations

import gc


def freeze_startup() -> int:
    """Collect the start-up's garbage, then freeze what is left; how many objects froze."""
    gc.collect()
    gc.freeze()
    return gc.get_freeze_count()
