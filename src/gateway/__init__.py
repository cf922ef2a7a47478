"""stt-gateway: classroom speech-to-text gateway in front of OpenAI Whisper."""

__version__ = "0.1.0"
