"""Who sees what through the API.

A caller is a user, possibly acting through a token. What they may see:
- campaigns they are a member of (all campaigns for a superuser), intersected with the token's
  campaigns when a token is used;
- at member level (any role): campaigns, rounds, prompts, their own judgments, and judging;
- at researcher level: samples (which reveal the model behind each output), comparisons with their
  aggregates and gold answers, everyone's judgments, model versions and jobs. Annotators do not see
  these, so judging stays blind.
Anything outside the scope is simply absent: lists leave it out, detail URLs answer 404.
Writes (claiming a pair, judging, freezing a snapshot) need a read-write token or a browser session (with CSRF).
"""

from dataclasses import dataclass

from django.db.models import QuerySet
from rest_framework.permissions import SAFE_METHODS, BasePermission
from rest_framework.request import Request

from annotation.models import ApiToken, Membership

MEMBER = "member"
RESEARCHER = "researcher"


@dataclass(frozen=True)
class Scope:
    """Campaign ids the caller may see; None means every campaign (a superuser without a token)."""

    member_ids: frozenset[int] | None
    researcher_ids: frozenset[int] | None

    def ids(self, level: str) -> frozenset[int] | None:
        return self.researcher_ids if level == RESEARCHER else self.member_ids

    def restrict(self, qs: QuerySet, *, path: str, level: str) -> QuerySet:
        ids = self.ids(level)
        return qs if ids is None else qs.filter(**{f"{path}__in": ids})

    def role(self, campaign_id: int) -> str | None:
        if self.researcher_ids is None or campaign_id in self.researcher_ids:
            return Membership.Role.RESEARCHER
        if self.member_ids is None or campaign_id in self.member_ids:
            return Membership.Role.ANNOTATOR
        return None


def request_token(request: Request) -> ApiToken | None:
    auth = getattr(request, "auth", None)  # absent on a plain Django HttpRequest
    return auth if isinstance(auth, ApiToken) else None


def scope_for(request: Request) -> Scope:
    """The caller's scope, computed once per request."""
    cached = getattr(request, "_loupe_scope", None)
    if cached is not None:
        return cached
    user = request.user
    member: set[int] | None
    researcher: set[int] | None
    if not user.is_authenticated:
        member, researcher = set(), set()
    elif user.is_superuser:
        member = researcher = None
    else:
        rows = list(Membership.objects.filter(user=user).values_list("campaign_id", "role"))
        member = {cid for cid, _ in rows}
        researcher = {cid for cid, role in rows if role == Membership.Role.RESEARCHER}
    token = request_token(request)
    if token is not None:
        allowed = set(token.campaigns.values_list("id", flat=True))
        member = allowed if member is None else member & allowed
        researcher = allowed if researcher is None else researcher & allowed
    scope = Scope(
        member_ids=None if member is None else frozenset(member),
        researcher_ids=None if researcher is None else frozenset(researcher),
    )
    request._loupe_scope = scope
    return scope


class ApiAccess(BasePermission):
    """Authenticated; unsafe methods need a read-write token (or a session, which DRF CSRF-checks)."""

    message = (
        "This API token is read-only; create a read-write token to claim pairs, submit judgments or freeze snapshots."
    )

    def has_permission(self, request: Request, view) -> bool:
        if not (request.user and request.user.is_authenticated):
            return False
        if request.method in SAFE_METHODS:
            return True
        token = request_token(request)
        return token is None or token.write
