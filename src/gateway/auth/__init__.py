"""Authentication: JWT claims, token extraction, the dev secret."""
