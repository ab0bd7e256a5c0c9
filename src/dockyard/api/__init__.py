"""The HTTP API: app factory, dependencies, thin routes."""
