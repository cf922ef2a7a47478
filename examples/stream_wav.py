"""Stream a WAV file to stt-gateway in real time and print what comes back.

    pip install stt-gateway     # for gateway.client, which itself needs only websockets
    python stream_wav.py ws://127.0.0.1:8080/api/v1/listen "$TOKEN" lesson.wav

The file must be 16-bit PCM, mono. Transcripts are printed as they arrive,
while the audio is still being sent; warnings, errors and the close code too.
If the connection drops, the client resumes the session and sends the audio
again from where the gateway has it: no transcript is lost or printed twice.
Exit status: 0 after a clean end (close 1000), 1 otherwise.
"""

import asyncio
import sys
import wave

from gateway.client import ListenStream, StreamRefused


async def send_audio(stream, path):
    """100 ms frames at real time, then CloseStream."""
    with wave.open(path) as wav:
        frames = wav.getframerate() // 10
        while chunk := wav.readframes(frames):
            await stream.send(chunk)
            await asyncio.sleep(0.1)
    await stream.finish()


def show(message):
    kind = message["type"]
    if kind == "Transcript":
        label = message["status"] if message["status"] != "dropped" else message["reason"]
        print(f"[{message['start']:7.2f}–{message['end']:7.2f}] {label:<9} {message['text']}")
    elif kind in ("Warning", "Error"):
        print(f"{kind} {message['code']}: {message['message']}", file=sys.stderr)
    elif kind == "Begin" and message.get("resumed"):
        print(f"resumed at {message['audio_seconds']:.2f} s", file=sys.stderr)
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
    async with ListenStream(url, token, sample_rate=rate, max_attempts=3) as stream:
        sender = asyncio.create_task(send_audio(stream, path))
        try:
            async for message in stream:  # read while sending
                show(message)
        except StreamRefused as exc:
            print(f"cannot connect to {url}: {exc}", file=sys.stderr)
            return 1
        finally:
            sender.cancel()
    sys.stdout.flush()  # the transcript first, then how it ended
    print(f"closed {stream.close_code}", file=sys.stderr)
    return 0 if stream.close_code == 1000 else 1


if __name__ == "__main__":
    if len(sys.argv) != 4:
        sys.exit(__doc__)
    sys.exit(asyncio.run(main(*sys.argv[1:])))
