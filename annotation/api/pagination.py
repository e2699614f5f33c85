"""Cursor pagination by id, with strict parameters.

`page_size` (1-500, default 50) outside its range is a 400, not silently clamped; `ordering` is
`id` (default, oldest first: ids grow with creation time) or `-id`; a cursor that was not handed
out by the API is a 400.
"""

from rest_framework.exceptions import NotFound
from rest_framework.pagination import Cursor, CursorPagination

from annotation.api.errors import BadRequest

DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 500
ORDERINGS = ("id", "-id")


class IdCursorPagination(CursorPagination):
    page_size = DEFAULT_PAGE_SIZE
    page_size_query_param = "page_size"
    max_page_size = MAX_PAGE_SIZE
    ordering = "id"
    ordering_param = "ordering"

    def query_params(self) -> tuple[str, ...]:
        return (self.cursor_query_param, self.page_size_query_param, self.ordering_param)

    def get_page_size(self, request) -> int:
        raw = request.query_params.get(self.page_size_query_param)
        if raw is None:
            return self.page_size
        try:
            size = int(raw)
        except ValueError:
            size = 0
        if not 1 <= size <= self.max_page_size:
            raise BadRequest(
                f"page_size must be a whole number from 1 to {self.max_page_size}; got {raw!r}.",
                {self.page_size_query_param: [f"Must be between 1 and {self.max_page_size}."]},
            )
        return size

    def get_ordering(self, request, queryset, view) -> tuple[str, ...]:
        raw = request.query_params.get(self.ordering_param, self.ordering)
        if raw not in ORDERINGS:
            raise BadRequest(
                f"ordering must be one of {', '.join(ORDERINGS)}; got {raw!r}.",
                {self.ordering_param: [f"Must be one of {', '.join(ORDERINGS)}."]},
            )
        return (raw,)

    def decode_cursor(self, request) -> Cursor | None:
        message = "Malformed cursor: pass the `next` or `previous` link from a previous page unchanged."
        try:
            cursor = super().decode_cursor(request)
        except NotFound:
            raise BadRequest(message, {self.cursor_query_param: ["Malformed cursor."]})
        if cursor is not None and cursor.position is not None:
            try:
                position = int(cursor.position)
            except ValueError:
                raise BadRequest(message, {self.cursor_query_param: ["Malformed cursor."]})
            if not 0 <= position < 2**63:
                raise BadRequest(message, {self.cursor_query_param: ["Malformed cursor."]})
        return cursor

    def get_schema_operation_parameters(self, view) -> list[dict]:
        return [
            {
                "name": self.cursor_query_param,
                "required": False,
                "in": "query",
                "description": "Opaque cursor from a previous page's `next` or `previous` link.",
                "schema": {"type": "string"},
            },
            {
                "name": self.page_size_query_param,
                "required": False,
                "in": "query",
                "description": f"Results per page, 1 to {self.max_page_size} (default {self.page_size}); "
                "out of range is a 400.",
                "schema": {"type": "integer", "minimum": 1, "maximum": self.max_page_size},
            },
            {
                "name": self.ordering_param,
                "required": False,
                "in": "query",
                "description": "`id` (oldest first, the default) or `-id` (newest first).",
                "schema": {"type": "string", "enum": list(ORDERINGS)},
            },
        ]
