"""The node agent that runs on every server."""
