"""Annotator pages: thin interfaces that parse, authorize, call one service and render.

Every view works without JavaScript (forms post and redirect); with the page's script the same
endpoints answer with fragments or JSON (`Accept: application/json`), which the simulated
annotators and the load benchmark use too.
"""

import uuid

from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST

from annotation import selectors
from annotation.errors import ServiceError
from annotation.models import Assignment, Choice, Round
from annotation.services.judgments import judgment_record_from_view, judgment_undo_last
from annotation.services.leases import assignment_claim_for_member, assignment_claim_next, assignment_skip

VIEW_CHOICES = {"left": Choice.FIRST, "right": Choice.SECOND, "tie": Choice.TIE, "both_bad": Choice.BOTH_BAD}


def _wants_json(request: HttpRequest) -> bool:
    return "application/json" in request.headers.get("Accept", "")


def _error(request: HttpRequest, exc: ServiceError) -> HttpResponse:
    if _wants_json(request) or request.htmx:
        return JsonResponse({"error": exc.message}, status=exc.status)
    return render(request, "annotation/error.html", {"message": exc.message}, status=exc.status)


def _round_or_404(request: HttpRequest, round_id: int) -> Round:
    round_ = selectors.round_for_member(user=request.user, round_id=round_id)
    if round_ is None:
        raise Http404("No such round.")
    return round_


def pair_context(assignment: Assignment) -> dict:
    """What the pair fragment and the JSON answer show: left/right in the lease's drawn order."""
    comparison = assignment.comparison
    first, second = comparison.sample_first, comparison.sample_second
    left, right = (second, first) if assignment.swapped else (first, second)
    campaign = assignment.round.campaign

    def side(sample) -> dict:
        return {
            "sample_id": sample.id,
            "kind": sample.kind,
            "urls": [reverse("annotation:media", args=[sample.id, i]) for i in range(len(sample.files))],
            "mime_types": list(sample.mime_types),
            "poster": reverse("annotation:poster", args=[sample.id]) if sample.poster else "",
        }

    return {
        "assignment_id": assignment.id,
        "comparison_id": comparison.id,
        "round_id": assignment.round_id,
        "prompt": comparison.prompt.text,
        "modality": campaign.modality,
        "criteria": [{"key": c, "label": c.replace("_", " ").capitalize()} for c in campaign.criteria],
        "left": side(left),
        "right": side(right),
        "expires_at": assignment.expires_at.isoformat(),
        # A fresh key per rendering: retries of one submit reuse it, so they create nothing.
        "idempotency_key": str(uuid.uuid4()),
    }


def _claim(request: HttpRequest, round_: Round, exclude: tuple[int, ...]) -> Assignment | None:
    assignment = assignment_claim_next(annotator=request.user, round_=round_, exclude=exclude)
    if assignment is None:
        return None
    if Assignment.comparison.is_cached(assignment):  # the claim already read what the page shows
        return assignment
    return selectors.assignment_for_page(assignment_id=assignment.id, annotator=request.user)


@login_required
@require_GET
def home(request: HttpRequest) -> HttpResponse:
    rounds = list(selectors.rounds_open_for_annotator(user=request.user))
    rows = [(r, selectors.annotator_progress(user=request.user, round_=r)) for r in rounds]
    return render(request, "annotation/home.html", {"rows": rows})


@login_required
@require_GET
def annotate(request: HttpRequest, round_id: int) -> HttpResponse:
    round_ = _round_or_404(request, round_id)
    current = _claim(request, round_, ())
    upcoming = _claim(request, round_, (current.id,)) if current else None
    progress = selectors.annotator_progress(user=request.user, round_=round_)
    context = {
        "round": round_,
        "campaign": round_.campaign,
        "current": pair_context(current) if current else None,
        "upcoming": pair_context(upcoming) if upcoming else None,
        "progress": progress,
        "choices": [
            ("left", "1", "Left better"),
            ("right", "2", "Right better"),
            ("tie", "3", "Tie"),
            ("both_bad", "4", "Both bad"),
        ],
    }
    return render(request, "annotation/annotate.html", context)


@login_required
@require_GET
def pair_next(request: HttpRequest, round_id: int) -> HttpResponse:
    """Claim one more pair (the page prefetches it while the current one is judged)."""
    try:
        exclude = tuple(int(x) for x in request.GET.get("exclude", "").split(",") if x)[:4]
    except ValueError:
        return JsonResponse({"error": "exclude must be a comma-separated list of ids."}, status=400)
    # Usual case: membership, claim and the page's data in one statement; else the general path.
    assignment = assignment_claim_for_member(annotator=request.user, round_id=round_id, exclude=exclude)
    if assignment is not None:
        round_ = assignment.round
    else:
        round_ = _round_or_404(request, round_id)
        assignment = _claim(request, round_, exclude)
    if assignment is None:
        return HttpResponse(status=204)
    context = pair_context(assignment)
    if _wants_json(request):
        return JsonResponse(context)
    return render(request, "annotation/_pair.html", {"pair": context, "campaign": round_.campaign, "hidden": True})


def _parse_judgment(request: HttpRequest) -> tuple[str, dict[str, str], int | None, uuid.UUID | None]:
    """The judgment as seen on screen (left = first), still in the lease's left/right order."""
    view_choice = request.POST.get("choice", "")
    if view_choice not in VIEW_CHOICES:
        raise ValueError(f"Unknown choice {view_choice!r}; expected left, right, tie or both_bad.")
    criteria = {}
    for key, value in request.POST.items():
        if key.startswith("criteria."):
            if value and value not in VIEW_CHOICES:
                raise ValueError(f"Unknown choice {value!r} for {key[9:]!r}.")
            criteria[key[9:]] = VIEW_CHOICES[value] if value else ""
    time_ms = request.POST.get("time_ms") or None
    key = request.POST.get("key") or None
    return VIEW_CHOICES[view_choice], criteria, int(time_ms) if time_ms else None, uuid.UUID(key) if key else None


@login_required
@require_POST
def judge(request: HttpRequest, assignment_id: int) -> HttpResponse:
    try:
        choice, criteria, time_ms, key = _parse_judgment(request)
    except ValueError as exc:
        return (
            JsonResponse({"error": str(exc)}, status=400)
            if _wants_json(request)
            else render(request, "annotation/error.html", {"message": str(exc)}, status=400)
        )
    try:
        recorded = judgment_record_from_view(
            annotator=request.user,
            assignment_id=assignment_id,
            view_choice=choice,
            view_criteria=criteria,
            time_on_task_ms=time_ms,
            idempotency_key=key,
        )
    except ServiceError as exc:
        return _error(request, exc)
    if _wants_json(request) or request.htmx:
        return JsonResponse(
            {"judgment_id": recorded.judgment_id, "created": recorded.created, "choice": recorded.choice},
            status=201 if recorded.created else 200,
        )
    return redirect("annotation:annotate", round_id=recorded.round_id)


@login_required
@require_POST
def skip(request: HttpRequest, assignment_id: int) -> HttpResponse:
    assignment = Assignment.objects.filter(id=assignment_id, annotator=request.user).only("id", "round_id").first()
    if assignment is None:
        raise Http404("No such pair for you.")
    try:
        assignment_skip(annotator=request.user, assignment_id=assignment.id)
    except ServiceError as exc:
        return _error(request, exc)
    if _wants_json(request) or request.htmx:
        return JsonResponse({"skipped": assignment.id})
    return redirect("annotation:annotate", round_id=assignment.round_id)


@login_required
@require_POST
def undo(request: HttpRequest, round_id: int) -> HttpResponse:
    round_ = _round_or_404(request, round_id)
    try:
        assignment = judgment_undo_last(annotator=request.user, round_=round_)
    except ServiceError as exc:
        return _error(request, exc)
    if _wants_json(request):
        return JsonResponse(
            pair_context(selectors.assignment_for_page(assignment_id=assignment.id, annotator=request.user))
        )
    if request.htmx:
        pair = pair_context(selectors.assignment_for_page(assignment_id=assignment.id, annotator=request.user))
        return render(request, "annotation/_pair.html", {"pair": pair, "campaign": round_.campaign, "hidden": True})
    return redirect("annotation:annotate", round_id=round_.id)


@login_required
@require_GET
def progress(request: HttpRequest, round_id: int) -> HttpResponse:
    round_ = _round_or_404(request, round_id)
    context = {
        "round": round_,
        "mine": selectors.annotator_progress(user=request.user, round_=round_),
        "overall": selectors.round_progress(round_=round_),
    }
    if _wants_json(request):
        mine, overall = context["mine"], context["overall"]
        return JsonResponse(
            {
                "done": mine.done,
                "available": mine.available,
                "round_judgments": overall.judgments,
                "round_wanted": overall.wanted,
            }
        )
    return render(request, "annotation/_progress.html", context)
