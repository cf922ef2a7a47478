"""The composition root and the lifecycles of the services it starts."""
