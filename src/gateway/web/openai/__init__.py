"""The OpenAI-compatible passthrough (``POST /v1/audio/transcriptions``)."""
