"""Stream a WAV file to stt-gateway in real time and print what comes back.

    pip install websockets
    python stream_wav.py ws://127.0.0.1:8080/api/v1/listen "$TOKEN" lesson.wav

The file must be 16-bit PCM, mono. Transcripts are printed as they arrive,
while the audio is still being sent; warnings, errors and the close code too.
Exit status: 0 after a clean end (close 1000), 1 otherwise.
"""

import asyncio
import json
import sys
import wave

import websockets


async def send_audio(ws, path):
    """100 ms frames at real time, then CloseStream. Stops quietly if the server closes."""
    try:
        with wave.open(path) as wav:
            frames = wav.getframerate() // 10
            while chunk := wav.readframes(frames):
                await ws.send(chunk)
                await asyncio.sleep(0.1)
        await ws.send(json.dumps({"type": "CloseStream"}))
    except websockets.ConnectionClosed:
        pass  # the receiver reports why


def show(message):
    kind = message["type"]
    if kind == "Transcript":
        label = message["status"] if message["status"] != "dropped" else message["reason"]
        print(f"[{message['start']:7.2f}–{message['end']:7.2f}] {label:<9} {message['text']}")
    elif kind in ("Warning", "Error"):
        print(f"{kind} {message['code']}: {message['message']}", file=sys.stderr)
    elif kind == "Begin":
        print(f"session {message['session_id']} ({message['config']['provider']})")
    elif kind == "Budget":
        print(f"budget: {message['percent_used']:.0f}% used", file=sys.stderr)
    elif kind == "Termination":
        print(f"done: {message['windows']} windows, ${message['cost_usd']:.4f}")


async def main(url, token, path):
    try:
        with wave.open(path) as wav:
            if wav.getnchannels() != 1 or wav.getsampwidth() != 2:
                sys.exit(f"{path}: need 16-bit PCM mono")
            rate = wav.getframerate()
    except (wave.Error, EOFError) as exc:  # float or compressed WAVs, other files
        sys.exit(f"{path}: not a 16-bit PCM WAV file ({exc}); convert it, e.g. with sox")
    try:
        async with websockets.connect(
            f"{url}?sample_rate={rate}",
            additional_headers={"Authorization": f"Bearer {token}"},
        ) as ws:
            sender = asyncio.create_task(send_audio(ws, path))
            try:
                async for raw in ws:  # read while sending
                    show(json.loads(raw))
            except websockets.ConnectionClosedError:
                pass
            sender.cancel()
            sys.stdout.flush()  # the transcript first, then how it ended
            print(f"closed {ws.close_code} {ws.close_reason}".rstrip(), file=sys.stderr)
            return 0 if ws.close_code == 1000 else 1
    except websockets.InvalidStatus as exc:
        print(f"handshake refused: HTTP {exc.response.status_code}", file=sys.stderr)
    except OSError as exc:
        print(f"cannot connect to {url}: {exc}", file=sys.stderr)
    return 1


if __name__ == "__main__":
    if len(sys.argv) != 4:
        sys.exit(__doc__)
    sys.exit(asyncio.run(main(*sys.argv[1:])))
