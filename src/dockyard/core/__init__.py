"""Business logic, one module per capability. Routes and the CLI only call into here."""
