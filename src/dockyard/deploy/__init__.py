"""The deployment engine: sources, Dockerfile generation, build, rollout, health, rollback."""
