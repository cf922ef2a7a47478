"""One window's way: reserve its cost, transcribe it, settle the charge."""
