"""The capacity baseline: a bare aiohttp WebSocket endpoint that receives and discards frames.

It speaks just enough of the protocol (the ``token`` subprotocol, a ``Begin``,
``Termination`` on ``CloseStream``) for the same load generator to drive it.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys

from aiohttp import WSMsgType, web

from gateway.signals import wait_for_stop_signal


async def listen(request: web.Request) -> web.WebSocketResponse:
    ws = web.WebSocketResponse(protocols=("token",), compress=False, max_msg_size=1 << 20)
    await ws.prepare(request)
    await ws.send_str('{"type":"Begin"}')
    received = 0
    async for msg in ws:
        if msg.type is WSMsgType.BINARY:
            received += len(msg.data)
        elif msg.type is WSMsgType.TEXT and "CloseStream" in msg.data:
            await ws.send_str(json.dumps({"type": "Termination", "bytes": received}))
            await ws.close()
    return ws


async def serve(port: int) -> None:
    app = web.Application()
    app.router.add_get("/api/v1/listen", listen)
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    print(json.dumps({"event": "sink.listening", "port": port}), flush=True)
    await wait_for_stop_signal()
    await runner.cleanup()


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m loadtest.sink")
    parser.add_argument("--port", type=int, required=True)
    asyncio.run(serve(parser.parse_args().port))
    return 0


if __name__ == "__main__":
    sys.exit(main())
