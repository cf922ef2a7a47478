"""Streaming: the pure windowing core, the session pipeline and the registry."""
