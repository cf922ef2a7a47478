"""The bundled simulated Whisper (OpenAI-compatible), for development and tests."""
