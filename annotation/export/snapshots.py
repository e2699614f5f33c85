"""Dataset snapshots: an export frozen in storage, with its sha256, row count and size.

The export streams into a temporary file (hashed and counted on the way), which is then saved to
storage under a generated name; the row is created only once the file is complete, so a failed
export leaves nothing behind. Snapshots are never rewritten: `snapshot_open` returns the stored
bytes, which hash to `sha256`.
"""

import hashlib
import tempfile
import uuid

from django.contrib.auth.models import AbstractBaseUser
from django.core.files import File
from django.core.files.storage import default_storage
from django.db import transaction

from annotation.errors import Invalid
from annotation.export.schema import SCHEMA_VERSION
from annotation.export.stream import EXTENSIONS, FORMATS, ExportStats, export_stream
from annotation.models import Campaign, DatasetSnapshot


def snapshot_create(
    *,
    campaign: Campaign,
    fmt: str,
    raw: bool = False,
    created_by: AbstractBaseUser | None,
    embed_media: bool = False,
    base_url: str = "",
) -> DatasetSnapshot:
    """Write the campaign's export to storage and record it. `base_url` prefixes media URLs."""
    if fmt not in FORMATS:
        raise Invalid(f"Unknown export format {fmt!r}; expected one of {', '.join(FORMATS)}.")
    stats = ExportStats()
    digest = hashlib.sha256()
    name = f"snapshots/campaign-{campaign.pk}/{uuid.uuid4().hex}.{EXTENSIONS[fmt]}"
    with tempfile.TemporaryFile() as tmp:
        for chunk in export_stream(
            campaign=campaign, fmt=fmt, raw=raw, embed_media=embed_media, base_url=base_url, stats=stats
        ):
            digest.update(chunk)
            tmp.write(chunk)
        tmp.seek(0)
        stored = default_storage.save(name, File(tmp, name=name))
    try:
        with transaction.atomic():
            return DatasetSnapshot.objects.create(
                campaign=campaign,
                fmt=fmt,
                raw=raw,
                embed_media=embed_media,
                file=stored,
                sha256=digest.hexdigest(),
                rows=stats.rows,
                size_bytes=stats.bytes,
                params={
                    "fmt": fmt,
                    "raw": raw,
                    "embed_media": embed_media,
                    "base_url": base_url,
                    "schema_version": SCHEMA_VERSION,
                },
                created_by=created_by,
            )
    except Exception:
        default_storage.delete(stored)
        raise


def snapshot_open(*, snapshot: DatasetSnapshot):
    """The stored file, opened for binary reading (the caller closes it)."""
    return default_storage.open(snapshot.file, "rb")


def snapshot_filename(snapshot: DatasetSnapshot) -> str:
    """The name a download is offered under."""
    kind = "judgments" if snapshot.raw else "comparisons"
    return f"loupe-campaign-{snapshot.campaign_id}-snapshot-{snapshot.pk}-{kind}.{EXTENSIONS[snapshot.fmt]}"
