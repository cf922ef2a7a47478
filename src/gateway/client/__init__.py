"""A Python client for ``/api/v1/listen`` that survives the network: reconnects with
backoff where the protocol allows, resumes the session after a drop and sends its audio
again from where the gateway has it, and hands out each message once.

It needs only ``websockets`` and imports nothing else of the gateway::

    from gateway.client import ListenStream

    async with ListenStream(url, token) as stream:
        ...  # await stream.send(pcm) while reading: async for message in stream
"""

from gateway.client.stream import ListenStream, StreamRefused

__all__ = ["ListenStream", "StreamRefused"]
