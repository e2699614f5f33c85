"""factory_boy factories for the annotation domain. Build a tiny world with `make_round`."""

import itertools

import factory
from django.contrib.auth import get_user_model
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage

from annotation.models import Campaign, Comparison, Membership, Prompt, Round, Sample
from training.models import Generator, ModelVersion


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = get_user_model()
        skip_postgeneration_save = True

    username = factory.Sequence(lambda n: f"user{n}")
    password = factory.PostGenerationMethodCall("set_password", "pw-for-tests-only")

    @factory.post_generation
    def _save(obj, create, extracted, **kwargs):  # noqa: N805
        if create:
            obj.save()


class CampaignFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Campaign

    name = factory.Sequence(lambda n: f"Campaign {n}")
    modality = "image"
    overlap = 3
    instructions = "Pick the image that matches the prompt better."


class GeneratorFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Generator
        django_get_or_create = ("name",)

    name = factory.Sequence(lambda n: f"gen-{n}")
    modality = "image"
    family = "external"


class ModelVersionFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = ModelVersion

    generator = factory.SubFactory(GeneratorFactory)
    name = factory.Sequence(lambda n: f"v{n}")


def add_member(campaign: Campaign, user, role: str = "annotator") -> Membership:
    return Membership.objects.create(campaign=campaign, user=user, role=role)


_PNG_1PX = bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010802000000907753de0000000c4944415408d763f8cfc0000003010100c9fe92ef0000000049454e44ae426082"
)
_counter = itertools.count()


def make_round(
    *,
    campaign: Campaign | None = None,
    prompts: int = 2,
    samples_per_prompt: int = 2,
    overlap: int | None = None,
    kind: str = "image",
) -> Round:
    """A round with real (tiny) media files, all pairs per prompt as comparisons."""
    campaign = campaign or CampaignFactory(modality={"image": "image", "video": "video", "views": "multiview"}[kind])
    if overlap is not None:
        campaign.overlap = overlap
        campaign.save(update_fields=["overlap"])
    number = (campaign.rounds.count() or 0) + 1
    round_ = Round.objects.create(campaign=campaign, number=number, status=Round.Status.OPEN)
    versions = [ModelVersionFactory() for _ in range(samples_per_prompt)]
    for p in range(prompts):
        prompt = Prompt.objects.create(round=round_, text=f"prompt {p}")
        samples = []
        for v in versions:
            name = default_storage.save(f"test/{next(_counter)}.png", ContentFile(_PNG_1PX))
            samples.append(
                Sample.objects.create(
                    prompt=prompt, round=round_, model_version=v, kind="image", files=[name], mime_types=["image/png"]
                )
            )
        for a, b in itertools.combinations(samples, 2):
            Comparison.objects.create(
                round=round_, prompt=prompt, sample_first=a, sample_second=b, overlap=campaign.overlap
            )
    return round_
