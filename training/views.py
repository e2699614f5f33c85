"""Researcher pages of the training app: a round's generation progress (polls until the job ends)."""

from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET
from django_htmx.http import HttpResponseStopPolling

from annotation import selectors
from annotation.models import Membership
from training.models import GenerationJob


@login_required
@require_GET
def round_generation(request: HttpRequest, round_id: int) -> HttpResponse:
    round_ = selectors.round_for_member(user=request.user, round_id=round_id)
    if round_ is None or selectors.campaign_role(user=request.user, campaign_id=round_.campaign_id) != (
        Membership.Role.RESEARCHER
    ):
        raise Http404("No such round.")
    job = GenerationJob.objects.filter(round=round_).first()
    context = {"round": round_, "job": job, "progress": selectors.round_progress(round_=round_)}
    if request.htmx:
        response = render(request, "training/round_generation.html#status", context)
        finished = job is None or job.status in (GenerationJob.Status.SUCCEEDED, GenerationJob.Status.FAILED)
        if finished:
            stop = HttpResponseStopPolling(response.content)
            return stop
        return response
    return render(request, "training/round_generation.html", context)
