"""One error shape for the whole API: `{"detail": "<a sentence>", "errors": {...}}`.

`detail` is always a readable sentence; `errors` (validation failures only) maps each parameter or
field to its messages. Service errors (`annotation.errors.ServiceError`) keep their status and message.
"""

from typing import Any

from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from annotation.errors import ServiceError


class BadRequest(exceptions.APIException):
    """A 400 with a sentence and, optionally, per-parameter messages."""

    status_code = status.HTTP_400_BAD_REQUEST
    default_detail = "Bad request."

    def __init__(self, detail: str, errors: dict[str, list[str]] | None = None) -> None:
        super().__init__(detail)
        self.errors = errors or {}


def _flatten(errors: Any, path: str = "") -> dict[str, list[str]]:
    """DRF's nested error structures as `{"field.sub": ["message", ...]}`."""
    out: dict[str, list[str]] = {}
    if isinstance(errors, dict):
        for key, value in errors.items():
            key = str(key)
            sub = f"{path}.{key}" if path and key != "non_field_errors" else (path or key)
            for k, v in _flatten(value, sub).items():
                out.setdefault(k, []).extend(v)
    elif isinstance(errors, list):
        if all(not isinstance(e, dict | list) for e in errors):
            out[path or "non_field_errors"] = [str(e) for e in errors]
        else:
            for i, value in enumerate(errors):
                for k, v in _flatten(value, f"{path}[{i}]").items():
                    out.setdefault(k, []).extend(v)
    else:
        out[path or "non_field_errors"] = [str(errors)]
    return out


def api_exception_handler(exc: Exception, context: dict) -> Response | None:
    if isinstance(exc, ServiceError):
        return Response({"detail": exc.message}, status=exc.status)
    if isinstance(exc, BadRequest):
        body: dict[str, Any] = {"detail": str(exc.detail)}
        if exc.errors:
            body["errors"] = exc.errors
        return Response(body, status=exc.status_code)
    response = drf_exception_handler(exc, context)
    if response is None:
        return None
    data = response.data
    if isinstance(exc, exceptions.ValidationError):
        errors = _flatten(data)
        summary = "; ".join(f"{k}: {' '.join(v)}" for k, v in errors.items())
        response.data = {"detail": f"Invalid input. {summary}", "errors": errors}
    elif isinstance(data, dict) and "detail" in data:
        response.data = {"detail": str(data["detail"])}
    else:
        response.data = {"detail": str(data)}
    return response
