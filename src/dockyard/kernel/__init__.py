"""The app kernel: settings, database, security, logging."""
