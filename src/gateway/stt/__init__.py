"""The upstream: Transcriber seam, OpenAI client, breaker, retries, adaptive windows."""
