"""The `dockyard` command: an HTTP client of the API, plus commands that run the server here."""
