"""HTTP interfaces of the dataset export and snapshots.

Two layers:

- reusable response builders that take a campaign (or snapshot) the caller has ALREADY authorised
  (`export_response`, `snapshot_download_response`, `snapshot_data`, `export_options`,
  `request_base_url`): the token API mounts these behind its own authentication;
- session views for researchers (`campaign_export`, `campaign_snapshots`, `snapshot_download`),
  wired in annotation/urls.py. Non-members get 404, annotators 403.
"""

from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse, QueryDict, StreamingHttpResponse
from django.urls import reverse
from django.views.decorators.http import require_GET, require_http_methods

from annotation import selectors
from annotation.errors import Invalid, ServiceError
from annotation.export import (
    CONTENT_TYPES,
    EXTENSIONS,
    FORMATS,
    snapshot_create,
    snapshot_filename,
    snapshot_open,
)
from annotation.export import export_stream as _export_stream
from annotation.models import Campaign, DatasetSnapshot, Membership

_TRUE, _FALSE = {"1", "true", "yes", "on"}, {"0", "false", "no", "off", ""}
_MEDIA = {"url": False, "embed": True}
_DOWNLOAD_CHUNK = 256 * 1024


# ---------------------------------------------------------------- reusable (caller authorises)


def request_base_url(request: HttpRequest) -> str:
    """scheme://host of the request: the prefix of media URLs in an export."""
    return f"{request.scheme}://{request.get_host()}"


def _flag(params: QueryDict, name: str) -> bool:
    value = params.get(name, "").strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise Invalid(f"Parameter {name!r} must be true or false, not {value!r}.")


def export_options(params: QueryDict) -> dict:
    """Parse `raw` (true/false) and `media` (url/embed) from a query or form; Invalid if malformed.

    Returns keyword arguments for `export_response` / `snapshot_create`: {"raw", "embed_media"}.
    """
    media = params.get("media", "url").strip().lower() or "url"
    if media not in _MEDIA:
        raise Invalid(f"Parameter 'media' must be one of {', '.join(_MEDIA)}, not {media!r}.")
    return {"raw": _flag(params, "raw"), "embed_media": _MEDIA[media]}


def _attachment(response: HttpResponse, filename: str) -> HttpResponse:
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    response["X-Content-Type-Options"] = "nosniff"
    response["Cache-Control"] = "private, no-store"
    return response


def export_response(
    *, campaign: Campaign, fmt: str, raw: bool = False, embed_media: bool = False, base_url: str
) -> StreamingHttpResponse:
    """Stream the export of an already-authorised campaign as an attachment.

    Raises Invalid for an unknown `fmt` (before anything is sent).
    """
    stream = _export_stream(campaign=campaign, fmt=fmt, raw=raw, embed_media=embed_media, base_url=base_url)
    response = StreamingHttpResponse(stream, content_type=CONTENT_TYPES[fmt])
    kind = "judgments" if raw else "comparisons"
    return _attachment(response, f"loupe-campaign-{campaign.pk}-{kind}.{EXTENSIONS[fmt]}")


def snapshot_data(snapshot: DatasetSnapshot, *, download_url: str | None = None) -> dict:
    """A snapshot as JSON-ready data."""
    return {
        "id": snapshot.pk,
        "campaign": snapshot.campaign_id,
        "format": snapshot.fmt,
        "raw": snapshot.raw,
        "embed_media": snapshot.embed_media,
        "sha256": snapshot.sha256,
        "rows": snapshot.rows,
        "size_bytes": snapshot.size_bytes,
        "params": snapshot.params,
        "created_by": snapshot.created_by_id,
        "created_at": snapshot.created_at.isoformat(),
        "download_url": download_url,
    }


def _chunks(handle):
    try:
        while chunk := handle.read(_DOWNLOAD_CHUNK):
            yield chunk
    finally:
        handle.close()


def snapshot_download_response(*, snapshot: DatasetSnapshot) -> StreamingHttpResponse:
    """The stored bytes of an already-authorised snapshot, with its sha256 as ETag."""
    try:
        handle = snapshot_open(snapshot=snapshot)
    except (FileNotFoundError, OSError) as exc:
        raise Http404("The snapshot's file is missing.") from exc
    response = StreamingHttpResponse(_chunks(handle), content_type=CONTENT_TYPES[snapshot.fmt])
    response["Content-Length"] = str(snapshot.size_bytes)
    response["ETag"] = f'"{snapshot.sha256}"'
    response["X-Content-SHA256"] = snapshot.sha256
    response = _attachment(response, snapshot_filename(snapshot))
    response["Cache-Control"] = "private, max-age=31536000, immutable"
    return response


# ---------------------------------------------------------------- session views (researchers)


def _error(exc: ServiceError) -> JsonResponse:
    return JsonResponse({"error": exc.message}, status=exc.status)


def _researcher_campaign(request: HttpRequest, campaign_id: int) -> Campaign | HttpResponse:
    role = selectors.campaign_role(user=request.user, campaign_id=campaign_id)
    campaign = Campaign.objects.filter(id=campaign_id).first() if role else None
    if campaign is None:
        raise Http404("No such campaign.")
    if role != Membership.Role.RESEARCHER:
        return JsonResponse({"error": "Only the campaign's researchers may export its data."}, status=403)
    return campaign


@login_required
@require_GET
def campaign_export(request: HttpRequest, campaign_id: int, fmt: str) -> HttpResponse:
    """GET campaigns/<id>/export.<parquet|jsonl>?raw=false&media=url"""
    if fmt not in FORMATS:
        raise Http404("Unknown export format.")
    campaign = _researcher_campaign(request, campaign_id)
    if isinstance(campaign, HttpResponse):
        return campaign
    try:
        options = export_options(request.GET)
        return export_response(campaign=campaign, fmt=fmt, base_url=request_base_url(request), **options)
    except ServiceError as exc:
        return _error(exc)


def _snapshot_url(request: HttpRequest, snapshot: DatasetSnapshot) -> str:
    return request.build_absolute_uri(reverse("annotation:snapshot_download", args=[snapshot.pk]))


@login_required
@require_http_methods(["GET", "POST"])
def campaign_snapshots(request: HttpRequest, campaign_id: int) -> HttpResponse:
    """GET: the campaign's snapshots, newest first. POST (fmt, raw, media): freeze a new one (201)."""
    campaign = _researcher_campaign(request, campaign_id)
    if isinstance(campaign, HttpResponse):
        return campaign
    if request.method == "GET":
        snapshots = DatasetSnapshot.objects.filter(campaign=campaign).order_by("-created_at", "-id")
        return JsonResponse({"results": [snapshot_data(s, download_url=_snapshot_url(request, s)) for s in snapshots]})
    try:
        fmt = request.POST.get("fmt", "parquet")
        if fmt not in FORMATS:
            raise Invalid(f"Unknown export format {fmt!r}; expected one of {', '.join(FORMATS)}.")
        snapshot = snapshot_create(
            campaign=campaign,
            fmt=fmt,
            created_by=request.user,
            base_url=request_base_url(request),
            **export_options(request.POST),
        )
    except ServiceError as exc:
        return _error(exc)
    return JsonResponse(snapshot_data(snapshot, download_url=_snapshot_url(request, snapshot)), status=201)


@login_required
@require_GET
def snapshot_download(request: HttpRequest, snapshot_id: int) -> HttpResponse:
    snapshot = DatasetSnapshot.objects.filter(id=snapshot_id).first()
    if snapshot is None:
        raise Http404("No such snapshot.")
    campaign = _researcher_campaign(request, snapshot.campaign_id)
    if isinstance(campaign, HttpResponse):
        return campaign
    return snapshot_download_response(snapshot=snapshot)
