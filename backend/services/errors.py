"""Errors a person can act on, raised by services and turned into 4xx answers or CLI messages."""


class ServiceError(Exception):
    """A refused request; ``str(error)`` is a sentence for a person."""

    status_code = 400


class NotFound(ServiceError):
    status_code = 404


class Conflict(ServiceError):
    status_code = 409
