"""The hostile-input suite: what careless or hostile clients send, against the real server."""
