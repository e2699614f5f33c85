import pytest
from django.urls import reverse

from annotation.models import Judgment
from tests.factories import UserFactory, add_member, make_round

pytestmark = pytest.mark.django_db


def test_annotator_judges_a_pair_through_the_page(client):
    round_ = make_round(prompts=1, samples_per_prompt=2, overlap=1)
    user = UserFactory()
    add_member(round_.campaign, user)
    client.force_login(user)
    page = client.get(reverse("annotation:annotate", args=[round_.id]))
    assert page.status_code == 200
    pair = page.context["current"]
    assert pair is not None
    resp = client.post(
        reverse("annotation:judge", args=[pair["assignment_id"]]), {"choice": "left", "key": pair["idempotency_key"]}
    )
    assert resp.status_code == 302
    judgment = Judgment.objects.get()
    assert judgment.left_sample_id == pair["left"]["sample_id"]
    media = client.get(pair["left"]["urls"][0])
    assert media.status_code == 200 and media["X-Content-Type-Options"] == "nosniff"
