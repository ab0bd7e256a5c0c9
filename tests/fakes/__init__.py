"""Local fakes of outside APIs, honest to each provider's published OpenAPI document
(tests/fakes/spec.py): the provider clients are tested against them, never against mocks."""
