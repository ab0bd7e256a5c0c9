"""Library errors. Each maps to one HTTP status; the message is for a person to act on."""

from __future__ import annotations


class DockyardError(Exception):
    status_code = 400

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidInput(DockyardError):
    status_code = 422


class NotAuthenticated(DockyardError):
    status_code = 401


class Forbidden(DockyardError):
    status_code = 403


class NotFound(DockyardError):
    status_code = 404

    def __init__(self, what: str, name: str) -> None:
        super().__init__(f"{what} {name!r} was not found")


class Conflict(DockyardError):
    status_code = 409


class UnsupportedMediaType(DockyardError):
    status_code = 415


class RateLimited(DockyardError):
    status_code = 429

    def __init__(self, retry_after: int) -> None:
        super().__init__(f"too many attempts; try again in {retry_after} seconds")
        self.retry_after = retry_after


class NotMigrated(DockyardError):
    status_code = 503


class ServerFailed(DockyardError):
    """A server's agent could not do what was asked (its answer or exit reason in the message)."""

    status_code = 502
