"""Simulated annotators judge through the real HTTP endpoints of a live server."""

import pytest
from django.core.management import call_command

from annotation.models import Comparison, Judgment, Sample
from tests.factories import make_round

pytestmark = pytest.mark.django_db(transaction=True)


def test_simulated_annotators_fill_a_round_over_http(live_server):
    round_ = make_round(prompts=4, samples_per_prompt=2, overlap=3)
    # The first sample of every pair is the better one; perfect raters must always say so.
    for comparison in Comparison.objects.filter(round=round_):
        Sample.objects.filter(id=comparison.sample_first_id).update(verifier_score=1.0)
        Sample.objects.filter(id=comparison.sample_second_id).update(verifier_score=0.0)

    call_command(
        "simulate_annotators",
        campaign=round_.campaign.id,
        annotators=4,
        accuracy=1.0,
        seconds=60,
        base_url=live_server.url,
    )

    assert Judgment.objects.count() == 4 * 3  # every comparison reached its overlap, then they stopped
    assert set(Judgment.objects.values_list("choice", flat=True)) == {"first"}
    # Left/right was drawn per lease, so "first" was chosen from both screen positions.
    lefts = {j.left_sample_id == j.comparison.sample_first_id for j in Judgment.objects.select_related("comparison")}
    assert lefts == {True, False}
