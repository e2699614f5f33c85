"""OpenAPI generation: every operation documents the API's error shape for its error codes."""

from drf_spectacular.openapi import AutoSchema
from drf_spectacular.utils import OpenApiResponse

from annotation.api.serializers import ErrorSerializer

_ERRORS = {
    "400": "Bad input: unknown or malformed parameter, bad cursor, page size out of range, invalid body.",
    "401": "Missing, malformed, unknown, revoked or expired credentials.",
    "403": "Not allowed: a read-only token (or a session without CSRF token) on a write.",
    "404": "No such object within what you may see.",
}
_WRITE_ERRORS = {"409": "Conflict with the current state (lease ran out, round closed, key reused)."}


class LoupeAutoSchema(AutoSchema):
    def _get_response_bodies(self, direction="response"):
        responses = super()._get_response_bodies(direction)
        errors = dict(_ERRORS)
        if self.method not in ("GET", "HEAD", "OPTIONS"):
            errors.update(_WRITE_ERRORS)
        for code, description in errors.items():
            if code not in responses:
                responses[code] = self._get_response_for_code(
                    OpenApiResponse(response=ErrorSerializer, description=description), code, direction=direction
                )
        return responses
