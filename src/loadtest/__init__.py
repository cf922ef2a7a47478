"""stt-loadtest: the simulated Whisper and classroom load scenarios."""
