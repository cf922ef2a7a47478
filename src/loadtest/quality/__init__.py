"""``stt-loadtest quality``: real speech with a known script, through any gateway.

- :mod:`.lessons` — the shipped sentence sets and how a lesson is spoken (pure).
- :mod:`.speech` — espeak-ng and sox: text to 16 kHz PCM (I/O).
- :mod:`.recording` — a lesson as one recording over a noise floor, with its script and
  speech intervals.
- :mod:`.scoring` — word error rate (jiwer, Whisper's English normaliser), billed over
  streamed seconds, text inside long pauses, latency (pure).
- :mod:`.runner` — stream a recording through a gateway; the same model on the whole file
  and on naive 5 s chunks; the report.
"""
