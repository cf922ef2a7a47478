"""Redis: the connection in its three topologies, the embedded server, the key layout and
its scripts, and the one place its errors are translated."""
