"""The web pages and their static files."""
