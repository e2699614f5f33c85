"""API tokens: create (plaintext shown once), authenticate, revoke.

A token reads `loupe_<prefix>_<secret>`. The prefix (8 hex digits) is stored as is and finds the
row; of the secret only its sha256 is stored, compared in constant time. A token is scoped to some
of its user's campaigns and is read-only unless created with `write=True`; it never sees more than
its user may see (the API intersects the token's campaigns with the user's memberships).
"""

import hashlib
import hmac
import re
import secrets
from collections.abc import Iterable
from datetime import datetime, timedelta

from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from annotation import selectors
from annotation.errors import Invalid, NotFound, ServiceError
from annotation.models import ApiToken, Campaign

TOKEN_RE = re.compile(r"^loupe_([0-9a-f]{8})_([A-Za-z0-9_-]{32,128})$")
# last_used_at is written at most this often per token: a busy client should not turn every
# read into a write.
LAST_USED_RESOLUTION = timedelta(seconds=60)
# Compared against when the prefix matches no token, so a miss costs the same as a wrong secret.
_DUMMY_DIGEST = hashlib.sha256(b"loupe-no-such-token").hexdigest()


class TokenRefused(ServiceError):
    """The token cannot authenticate; the message says why (malformed, unknown, revoked, expired)."""

    status = 401


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode("ascii")).hexdigest()


def token_create(
    *,
    user: AbstractBaseUser,
    name: str,
    campaigns: Iterable[Campaign | int],
    write: bool,
    expires_at: datetime | None = None,
) -> tuple[ApiToken, str]:
    """Create a token for `user`, scoped to `campaigns` (each one the user may see).

    Returns (token, plaintext). The plaintext is not stored anywhere: show it once.
    """
    name = (name or "").strip()
    if not name or len(name) > 100:
        raise Invalid("Give the token a name of 1 to 100 characters.")
    ids = sorted({c.pk if isinstance(c, Campaign) else int(c) for c in campaigns})
    if not ids:
        raise Invalid("Choose at least one campaign for the token.")
    allowed = set(selectors.campaigns_for_user(user=user).filter(id__in=ids).values_list("id", flat=True))
    missing = [i for i in ids if i not in allowed]
    if missing:
        raise Invalid(f"{user} is not a member of campaign(s) {', '.join(map(str, missing))}.")
    if expires_at is not None and expires_at <= timezone.now():
        raise Invalid("The expiry date must be in the future.")
    secret = secrets.token_urlsafe(32)
    with transaction.atomic():
        while True:  # 2^32 prefixes: a clash is rare, but the unique constraint must not surface as a 500
            prefix = secrets.token_hex(4)
            if not ApiToken.objects.filter(prefix=prefix).exists():
                break
        token = ApiToken.objects.create(
            user=user,
            name=name,
            prefix=prefix,
            secret_sha256=_digest(secret),
            write=bool(write),
            expires_at=expires_at,
        )
        token.campaigns.set(ids)
    return token, f"loupe_{prefix}_{secret}"


def token_authenticate(*, raw: str) -> ApiToken:
    """The live token that `raw` names, with its user loaded; raises TokenRefused with the reason."""
    match = TOKEN_RE.match(raw or "")
    if match is None:
        raise TokenRefused("Malformed API token: expected loupe_<prefix>_<secret>.")
    prefix, secret = match.groups()
    token = ApiToken.objects.select_related("user").filter(prefix=prefix).first()
    stored = token.secret_sha256 if token is not None else _DUMMY_DIGEST
    if not hmac.compare_digest(stored, _digest(secret)) or token is None:
        raise TokenRefused("Invalid API token.")
    now = timezone.now()
    if token.revoked_at is not None:
        raise TokenRefused(f"This API token was revoked at {token.revoked_at:%Y-%m-%d %H:%M} UTC.")
    if token.expires_at is not None and token.expires_at <= now:
        raise TokenRefused(f"This API token expired at {token.expires_at:%Y-%m-%d %H:%M} UTC.")
    if not token.user.is_active:
        raise TokenRefused("The account this API token belongs to is disabled.")
    if token.last_used_at is None or token.last_used_at < now - LAST_USED_RESOLUTION:
        ApiToken.objects.filter(id=token.id).filter(
            Q(last_used_at__isnull=True) | Q(last_used_at__lt=now - LAST_USED_RESOLUTION)
        ).update(last_used_at=now)
        token.last_used_at = now
    return token


def token_revoke(*, token: ApiToken) -> ApiToken:
    """Revoke the token (idempotent: revoking twice keeps the first time). Authorize before calling."""
    now = timezone.now()
    ApiToken.objects.filter(id=token.id, revoked_at__isnull=True).update(revoked_at=now)
    token.refresh_from_db(fields=["revoked_at"])
    return token


def token_revoke_own(*, user: AbstractBaseUser, token_id: int) -> ApiToken:
    """Revoke one of the user's own tokens."""
    token = ApiToken.objects.filter(id=token_id, user=user).first()
    if token is None:
        raise NotFound("No such token of yours.")
    return token_revoke(token=token)


def tokens_of_user(*, user: AbstractBaseUser):
    return ApiToken.objects.filter(user=user).prefetch_related("campaigns").order_by("-created_at")
