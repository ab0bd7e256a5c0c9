"""Forge webhooks: each provider's delivery format and signature scheme (pure)."""
