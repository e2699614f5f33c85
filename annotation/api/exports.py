"""Dataset export and snapshots through the API: the response builders of `annotation.export_views`
behind the API's authentication and scope.

- `GET campaigns/{id}/export/` streams the campaign's export (Parquet or JSONL);
- `GET campaigns/{id}/snapshots/` lists its snapshots, `POST` freezes a new one;
- `GET snapshots/{id}/` describes one, `GET snapshots/{id}/download/` returns its stored bytes.

The data reveals which model made each side, so it is for the campaign's researchers (and
superusers), through a session or a token of theirs; read-only tokens may export and download,
freezing a snapshot is a write. A campaign outside the caller's scope is a 404, one where the caller
only annotates a 403 (it is visible to them under `campaigns/`); a snapshot is a researcher-level
object, so anyone else gets a 404 for it.
"""

import re

from django.http import HttpResponse, StreamingHttpResponse
from django.urls import reverse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import serializers, status
from rest_framework.exceptions import NotFound, PermissionDenied
from rest_framework.generics import GenericAPIView
from rest_framework.negotiation import BaseContentNegotiation
from rest_framework.request import Request
from rest_framework.response import Response

from annotation.api.errors import BadRequest
from annotation.api.filters import MAX_ID
from annotation.api.pagination import IdCursorPagination
from annotation.api.permissions import RESEARCHER, scope_for
from annotation.api.views import ApiViewMixin
from annotation.export import CONTENT_TYPES, FORMATS, snapshot_create
from annotation.export_views import export_response, request_base_url, snapshot_data, snapshot_download_response
from annotation.models import Campaign, DatasetSnapshot

MEDIA = ("url", "embed")
EXPORT_TAG = "export"
_ID = re.compile(r"^[0-9]{1,19}$")


# ---------------------------------------------------------------- representations


class ExportQuerySerializer(serializers.Serializer):
    """The export's query parameters (documented in the schema from this class)."""

    format = serializers.ChoiceField(
        choices=FORMATS, default="parquet", help_text="`parquet` (default) or `jsonl` (JSON Lines)."
    )
    raw = serializers.ChoiceField(
        choices=["true", "false"],
        default="false",
        help_text="`true`: one row per judgment; `false` (default): one row per comparison, judgments aggregated.",
    )
    media = serializers.ChoiceField(
        choices=MEDIA,
        default="url",
        help_text="`url` (default): media as permission-checked URLs; `embed`: the image bytes in `jpg_0`/`jpg_1`.",
    )


class SnapshotCreateSerializer(serializers.Serializer):
    format = serializers.ChoiceField(choices=FORMATS, default="parquet", help_text="`parquet` (default) or `jsonl`.")
    raw = serializers.BooleanField(default=False, help_text="One row per judgment instead of per comparison.")
    media = serializers.ChoiceField(choices=MEDIA, default="url", help_text="Media as URLs (default) or embedded.")


class SnapshotSerializer(serializers.Serializer):
    """A frozen export; the body is `annotation.export_views.snapshot_data`."""

    id = serializers.IntegerField(read_only=True)
    campaign = serializers.IntegerField(read_only=True)
    format = serializers.ChoiceField(choices=FORMATS, read_only=True)
    raw = serializers.BooleanField(read_only=True, help_text="One row per judgment instead of per comparison.")
    embed_media = serializers.BooleanField(read_only=True)
    sha256 = serializers.RegexField(r"^[0-9a-f]{64}$", read_only=True, help_text="SHA-256 of the stored bytes.")
    rows = serializers.IntegerField(read_only=True, min_value=0, max_value=2**63 - 1)
    size_bytes = serializers.IntegerField(read_only=True, min_value=0, max_value=2**63 - 1, help_text="Bytes.")
    params = serializers.DictField(read_only=True, help_text="Everything the export was made with.")
    created_by = serializers.IntegerField(read_only=True, allow_null=True, help_text="User id of its creator.")
    created_at = serializers.DateTimeField(read_only=True)
    download_url = serializers.URLField(read_only=True, help_text="Where the API serves its bytes.")


# ---------------------------------------------------------------- helpers


class ErrorsAsJson(BaseContentNegotiation):
    """The file responses are built outside DRF's renderers; what DRF renders (errors) is JSON whatever
    the Accept header says. This also keeps the export's `format` parameter away from DRF's own
    `?format=` renderer override."""

    def select_parser(self, request, parsers):
        return parsers[0] if parsers else None

    def select_renderer(self, request, renderers, format_suffix=None):
        return renderers[0], renderers[0].media_type


def _accept_only(request: Request, allowed: tuple[str, ...] | set[str]) -> None:
    """A 400 naming any query parameter the endpoint does not take (as the lists' filter backend does)."""
    unknown = sorted(set(request.query_params) - set(allowed))
    if unknown:
        known = ", ".join(sorted(allowed)) or "none"
        raise BadRequest(
            f"Unknown query parameter(s): {', '.join(unknown)}. This endpoint accepts: {known}.",
            {name: ["Unknown query parameter."] for name in unknown},
        )


def _id(raw: str, what: str) -> int:
    """An id from the URL; anything but a positive 64-bit integer names nothing (404)."""
    if not _ID.match(raw) or int(raw) > MAX_ID:
        raise NotFound(f"No such {what}.")
    return int(raw)


def _research_campaign(request: Request, raw_id: str) -> Campaign:
    """The campaign if the caller researches it (through the token, if any); 404 outside the caller's
    campaigns, 403 for its annotators."""
    campaign_id = _id(raw_id, "campaign")
    role = scope_for(request).role(campaign_id)
    campaign = Campaign.objects.filter(id=campaign_id).first() if role else None
    if campaign is None:
        raise NotFound("No such campaign.")
    if role != RESEARCHER:
        raise PermissionDenied("Only the campaign's researchers may export its data or freeze snapshots.")
    return campaign


def _snapshot(request: Request, raw_id: str) -> DatasetSnapshot:
    qs = scope_for(request).restrict(DatasetSnapshot.objects.all(), path="campaign_id", level=RESEARCHER)
    snapshot = qs.filter(id=_id(raw_id, "snapshot")).first()
    if snapshot is None:
        raise NotFound("No such snapshot.")
    return snapshot


def _snapshot_body(request: Request, snapshot: DatasetSnapshot) -> dict:
    url = request.build_absolute_uri(reverse("api:snapshot-download", args=[snapshot.pk]))
    return snapshot_data(snapshot, download_url=url)


_FILE = "The file, streamed: Parquet or JSON Lines (one JSON object a line)."
_FILE_RESPONSES = {
    (200, CONTENT_TYPES[fmt]): OpenApiResponse(OpenApiTypes.BINARY, description=_FILE) for fmt in FORMATS
}


def _id_parameter(what: str) -> OpenApiParameter:
    return OpenApiParameter(
        "id",
        {"type": "integer", "format": "int64", "minimum": 1, "maximum": MAX_ID},
        OpenApiParameter.PATH,
        description=f"The {what}'s id.",
    )


CAMPAIGN_ID = _id_parameter("campaign")
SNAPSHOT_ID = _id_parameter("snapshot")
_DISPOSITION = OpenApiParameter(
    "Content-Disposition",
    OpenApiTypes.STR,
    OpenApiParameter.HEADER,
    required=True,
    description='`attachment; filename="loupe-campaign-<id>-….<parquet|jsonl>"`',
    response=[200],
)


# ---------------------------------------------------------------- views


class CampaignExportView(ApiViewMixin, GenericAPIView):
    """The campaign's preference dataset, streamed."""

    content_negotiation_class = ErrorsAsJson
    pagination_class = None
    filter_backends: list = []

    @extend_schema(
        tags=[EXPORT_TAG],
        operation_id="campaigns_export",
        summary="Export the campaign's preference dataset (researchers), streamed.",
        description="Parquet or JSON Lines with Pick-a-Pic v2 compatible columns plus Loupe's own "
        "(docs/export.md lists them): one row per judged comparison, or per judgment with `raw=true`. "
        "Streamed with bounded memory; the media URLs need the same token or session.",
        parameters=[CAMPAIGN_ID, ExportQuerySerializer, _DISPOSITION],
        responses=_FILE_RESPONSES,
    )
    def get(self, request: Request, pk: str) -> StreamingHttpResponse:
        _accept_only(request, set(ExportQuerySerializer().fields))
        query = ExportQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        options = query.validated_data
        campaign = _research_campaign(request, pk)
        return export_response(
            campaign=campaign,
            fmt=options["format"],
            raw=options["raw"] == "true",
            embed_media=options["media"] == "embed",
            base_url=request_base_url(request),
        )


class CampaignSnapshotsView(ApiViewMixin, GenericAPIView):
    """The campaign's frozen exports."""

    serializer_class = SnapshotSerializer
    pagination_class = IdCursorPagination
    filter_backends: list = []

    @extend_schema(
        tags=[EXPORT_TAG],
        operation_id="campaigns_snapshots_list",
        summary="Snapshots of the campaign (researchers).",
        parameters=[CAMPAIGN_ID],
        responses=SnapshotSerializer(many=True),
    )
    def get(self, request: Request, pk: str) -> Response:
        _accept_only(request, self.paginator.query_params())
        campaign = _research_campaign(request, pk)
        page = self.paginate_queryset(DatasetSnapshot.objects.filter(campaign=campaign))
        return self.get_paginated_response([_snapshot_body(request, s) for s in page])

    @extend_schema(
        tags=[EXPORT_TAG],
        operation_id="campaigns_snapshots_create",
        summary="Freeze a snapshot of the campaign's export (researchers; a write).",
        parameters=[CAMPAIGN_ID],
        description="Exports the campaign now, stores the file and records its SHA-256, rows and size. "
        "Needs a read-write token or a session (with CSRF). Runs in the request: a large campaign "
        "takes seconds.",
        request=SnapshotCreateSerializer,
        responses={201: SnapshotSerializer},
    )
    def post(self, request: Request, pk: str) -> Response:
        _accept_only(request, ())
        campaign = _research_campaign(request, pk)
        payload = SnapshotCreateSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        data = payload.validated_data
        snapshot = snapshot_create(
            campaign=campaign,
            fmt=data["format"],
            raw=data["raw"],
            embed_media=data["media"] == "embed",
            created_by=request.user,
            base_url=request_base_url(request),
        )
        body = _snapshot_body(request, snapshot)
        return Response(body, status=status.HTTP_201_CREATED, headers={"Location": body["download_url"]})


class SnapshotDetailView(ApiViewMixin, GenericAPIView):
    serializer_class = SnapshotSerializer
    pagination_class = None
    filter_backends: list = []

    @extend_schema(
        tags=[EXPORT_TAG],
        operation_id="snapshots_retrieve",
        summary="One snapshot (researchers).",
        parameters=[SNAPSHOT_ID],
    )
    def get(self, request: Request, pk: str) -> Response:
        _accept_only(request, ())
        return Response(_snapshot_body(request, _snapshot(request, pk)))


class SnapshotDownloadView(ApiViewMixin, GenericAPIView):
    content_negotiation_class = ErrorsAsJson
    pagination_class = None
    filter_backends: list = []

    @extend_schema(
        tags=[EXPORT_TAG],
        operation_id="snapshots_download",
        summary="The snapshot's stored bytes, byte for byte (researchers).",
        description="`ETag` and `X-Content-SHA256` carry the SHA-256 of the body; `If-None-Match` "
        "with that ETag gets a 304.",
        parameters=[
            SNAPSHOT_ID,
            _DISPOSITION,
            OpenApiParameter(
                "ETag",
                OpenApiTypes.STR,
                OpenApiParameter.HEADER,
                required=True,
                response=[200, 304],
                description='`"<sha256>"`',
            ),
            OpenApiParameter(
                "X-Content-SHA256",
                OpenApiTypes.STR,
                OpenApiParameter.HEADER,
                required=True,
                response=[200],
                description="The SHA-256 of the body, hex.",
            ),
        ],
        responses={**_FILE_RESPONSES, 304: OpenApiResponse(description="Not modified: you hold these bytes.")},
    )
    def get(self, request: Request, pk: str) -> HttpResponse:
        _accept_only(request, ())
        snapshot = _snapshot(request, pk)
        etag = f'"{snapshot.sha256}"'
        wanted = {tag.strip().removeprefix("W/") for tag in request.headers.get("If-None-Match", "").split(",")}
        if etag in wanted or "*" in wanted:
            response = HttpResponse(status=status.HTTP_304_NOT_MODIFIED)
            response["ETag"] = etag
            return response
        return snapshot_download_response(snapshot=snapshot)
