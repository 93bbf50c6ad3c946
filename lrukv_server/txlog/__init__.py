"""Transaction logs: every applied PUT and DELETE, recorded and replayed at start."""
