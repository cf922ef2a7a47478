"""The stream edge: the WebSocket handshake and the driver of one session."""
