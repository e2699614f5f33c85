"""Starting a round's generation: validation, the rows it writes, and the enqueue after commit."""

from unittest import mock

import pytest
from django.urls import reverse

from annotation.errors import Invalid
from annotation.models import Round
from tests.factories import CampaignFactory, UserFactory, add_member
from training.models import GenerationJob
from training.services import generation_start, generator_register_builtins
from workers import tasks

pytestmark = pytest.mark.django_db


@pytest.fixture
def builtins():
    return generator_register_builtins()


def test_register_builtins_is_idempotent(builtins):
    again = generator_register_builtins()
    assert {k: v.id for k, v in again.items()} == {k: v.id for k, v in builtins.items()}
    assert set(builtins) == {"shapes-image-eps", "shapes-image-flow", "shapes-video", "shapes-multiview"}


def test_start_creates_a_generating_round_and_queues_after_commit(builtins, django_capture_on_commit_callbacks):
    campaign = CampaignFactory(modality="image")
    with mock.patch.object(tasks.round_generate, "delay") as delay:
        with django_capture_on_commit_callbacks(execute=True):
            job = generation_start(
                campaign=campaign, model_versions=[builtins["shapes-image-eps"]], samples_per_prompt=2
            )
        delay.assert_called_once_with(job.id)
    assert job.status == GenerationJob.Status.QUEUED
    assert job.round.status == Round.Status.GENERATING and job.round.number == 1
    assert job.config["samples_per_prompt"] == 2


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"model_versions": []}, "at least one model version"),
        ({"prompt_set": "nope"}, "Unknown prompt set"),
        ({"samples_per_prompt": 9}, "between 1 and 8"),
        ({"samples_per_prompt": 1}, "at least two samples"),
    ],
)
def test_start_refuses_bad_requests_and_writes_nothing(builtins, kwargs, message):
    campaign = CampaignFactory(modality="image")
    args = {"campaign": campaign, "model_versions": [builtins["shapes-image-eps"]], **kwargs}
    with pytest.raises(Invalid, match=message):
        generation_start(**args)
    assert not Round.objects.exists() and not GenerationJob.objects.exists()


def test_start_refuses_versions_of_another_modality(builtins):
    campaign = CampaignFactory(modality="video")
    with pytest.raises(Invalid, match="do not generate video"):
        generation_start(campaign=campaign, model_versions=[builtins["shapes-image-eps"]])


def test_generation_page_polls_until_the_job_ends(client, builtins):
    campaign = CampaignFactory(modality="image")
    researcher, annotator = UserFactory(), UserFactory()
    add_member(campaign, researcher, role="researcher")
    add_member(campaign, annotator)
    with mock.patch.object(tasks.round_generate, "delay"):
        job = generation_start(campaign=campaign, model_versions=[builtins["shapes-image-eps"]])
    url = reverse("training:round_generation", args=[job.round_id])
    client.force_login(annotator)
    assert client.get(url).status_code == 404
    client.force_login(researcher)
    page = client.get(url)
    assert page.status_code == 200 and b'hx-trigger="every 2s"' in page.content
    assert client.get(url, headers={"HX-Request": "true"}).status_code == 200
    GenerationJob.objects.filter(id=job.id).update(status="succeeded", progress_total=4, progress_done=4)
    assert client.get(url, headers={"HX-Request": "true"}).status_code == 286  # htmx stops polling
