"""Tables (SQLAlchemy) and API schemas (Pydantic)."""
