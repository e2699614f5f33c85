"""Media behind a permission check.

Files are never served by URL path: a request names a sample and a file index, the caller must be a
member of the sample's campaign, and the response carries the stored content type (checked from
content at import), `X-Content-Type-Options: nosniff`, an inline `Content-Disposition` with a
generated name, and private cache headers. Byte ranges are honoured, since browsers seek videos
with them.

The caller is the browser session, or an API token (`Authorization: Bearer <token>`, as the API
takes it) so that scripts can fetch the media URLs an export or the API hands out: the token's user
must be a member of the sample's campaign and the campaign one of the token's. A refused token is a
401 saying why; no credentials at all still go to the login page.
"""

import re
from collections.abc import Callable
from functools import wraps

from django.contrib.auth.views import redirect_to_login
from django.core.files.storage import default_storage
from django.http import FileResponse, Http404, HttpRequest, HttpResponse, JsonResponse, StreamingHttpResponse
from django.utils.cache import patch_vary_headers
from django.views.decorators.http import require_GET

from annotation import selectors
from annotation.api.auth import token_from_authorization
from annotation.models import Sample
from annotation.tokens import TokenRefused

_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")
_CHUNK = 64 * 1024
_MIME_BY_EXT = {
    ".png": "image/png",
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".webp": "image/webp",
    ".mp4": "video/mp4",
    ".webm": "video/webm",
}


def _headers(response: HttpResponse, *, name: str) -> HttpResponse:
    response["X-Content-Type-Options"] = "nosniff"
    response["Content-Disposition"] = f'inline; filename="{name}"'
    response["Cache-Control"] = "private, max-age=3600"
    response["Accept-Ranges"] = "bytes"
    response["Content-Security-Policy"] = "default-src 'none'; sandbox"
    return response


def _iter_range(handle, start: int, length: int):
    handle.seek(start)
    remaining = length
    try:
        while remaining > 0:
            chunk = handle.read(min(_CHUNK, remaining))
            if not chunk:
                break
            remaining -= len(chunk)
            yield chunk
    finally:
        handle.close()


def _serve(request: HttpRequest, storage_name: str, mime: str, download_name: str) -> HttpResponse:
    try:
        size = default_storage.size(storage_name)
        handle = default_storage.open(storage_name, "rb")
    except (FileNotFoundError, OSError) as exc:
        raise Http404("Media file is missing.") from exc
    match = _RANGE.match(request.headers.get("Range", ""))
    if match and (match.group(1) or match.group(2)):
        first, last = match.group(1), match.group(2)
        if first:
            start, end = int(first), min(int(last) if last else size - 1, size - 1)
        else:  # suffix range: the last N bytes
            start, end = max(size - int(last), 0), size - 1
        if start >= size or start > end:
            handle.close()
            response = HttpResponse(status=416)
            response["Content-Range"] = f"bytes */{size}"
            return _headers(response, name=download_name)
        response = StreamingHttpResponse(_iter_range(handle, start, end - start + 1), status=206, content_type=mime)
        response["Content-Range"] = f"bytes {start}-{end}/{size}"
        response["Content-Length"] = str(end - start + 1)
        return _headers(response, name=download_name)
    response = FileResponse(handle, content_type=mime)
    response["Content-Length"] = str(size)
    return _headers(response, name=download_name)


def _member_sample(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """Resolve `sample_id` to a sample the caller (session or API token) may see, else 404."""

    @wraps(view)
    def wrapped(request: HttpRequest, sample_id: int, *args, **kwargs) -> HttpResponse:
        try:
            token = token_from_authorization(request.META.get("HTTP_AUTHORIZATION", "").encode("latin-1"))
        except TokenRefused as exc:
            response = JsonResponse({"detail": exc.message}, status=401)
            response["WWW-Authenticate"] = 'Bearer realm="loupe"'
            return response
        if token is None and not request.user.is_authenticated:
            return redirect_to_login(request.get_full_path())
        user = request.user if token is None else token.user
        sample = selectors.sample_for_member(user=user, sample_id=sample_id)
        if sample is not None and token is not None and not token.campaigns.filter(rounds=sample.round_id).exists():
            sample = None
        if sample is None:
            raise Http404("No such media.")
        response = view(request, sample, *args, **kwargs)
        if token is not None:
            patch_vary_headers(response, ["Authorization"])
        return response

    return wrapped


@_member_sample
@require_GET
def media(request: HttpRequest, sample: Sample, index: int) -> HttpResponse:
    if index >= len(sample.files):
        raise Http404("No such media.")
    name = sample.files[index]
    mime = sample.mime_types[index] if index < len(sample.mime_types) else ""
    ext = "." + name.rsplit(".", 1)[-1].lower() if "." in name else ""
    return _serve(
        request, name, mime or _MIME_BY_EXT.get(ext, "application/octet-stream"), f"sample-{sample.id}-{index}{ext}"
    )


@_member_sample
@require_GET
def poster(request: HttpRequest, sample: Sample) -> HttpResponse:
    if not sample.poster:
        raise Http404("No such media.")
    return _serve(request, sample.poster, "image/png", f"sample-{sample.id}-poster.png")
