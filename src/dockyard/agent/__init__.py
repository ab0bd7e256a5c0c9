"""The node agent: a small authenticated HTTP service that drives Docker and nginx on a server."""
