"""Errors raised by services, each with a message meant for the person who caused it."""


class ServiceError(Exception):
    """Base class: interfaces turn these into a 4xx with the message."""

    status = 400

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class NotFound(ServiceError):
    status = 404


class Conflict(ServiceError):
    status = 409


class Invalid(ServiceError):
    status = 400
