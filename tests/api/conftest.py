"""A small world for API tests: two campaigns, every role, tokens, leases, judgments and jobs.

Campaign A (round_a): alice and ann annotate, rita researches. Campaign B (round_b): bob annotates,
oscar researches. admin is a superuser. Tokens: rita's read-only token for A, alice's read-write
token for A, oscar's read-write token for B ("a token of another campaign").
"""

import pytest

from annotation.models import Comparison
from annotation.services.judgments import judgment_record
from annotation.services.leases import assignment_claim_next
from annotation.tokens import token_create
from tests.api.helpers import World
from tests.factories import UserFactory, add_member, make_round
from training.models import GenerationJob


def _judge(user, round_, choice="first"):
    lease = assignment_claim_next(annotator=user, round_=round_)
    judgment, _ = judgment_record(annotator=user, assignment_id=lease.id, choice=choice)
    return judgment


@pytest.fixture
def world(db) -> World:
    round_a = make_round(prompts=2, samples_per_prompt=3, overlap=3)
    round_b = make_round(prompts=1, samples_per_prompt=2, overlap=3)
    for r in (round_a, round_b):
        r.model_versions.set({s.model_version for s in r.samples.all()})
        GenerationJob.objects.create(round=r, status=GenerationJob.Status.SUCCEEDED, progress_done=1, progress_total=1)
    w = World(round_a=round_a, round_b=round_b)
    w.users = {
        "alice": UserFactory(),
        "ann": UserFactory(),
        "rita": UserFactory(is_staff=True),
        "bob": UserFactory(),
        "oscar": UserFactory(is_staff=True),
        "admin": UserFactory(is_staff=True, is_superuser=True),
    }
    a, b = round_a.campaign, round_b.campaign
    add_member(a, w.users["alice"])
    add_member(a, w.users["ann"])
    add_member(a, w.users["rita"], role="researcher")
    add_member(b, w.users["bob"])
    add_member(b, w.users["oscar"], role="researcher")
    w.tokens = {
        "ro_token": token_create(user=w.users["rita"], name="ro", campaigns=[a], write=False)[1],
        "write_token": token_create(user=w.users["alice"], name="rw", campaigns=[a], write=True)[1],
        "other_token": token_create(user=w.users["oscar"], name="other", campaigns=[b], write=True)[1],
    }
    # Judgments: ann's in A (only researchers and admin may see it), alice's own in A, bob's in B.
    w.objects["judgment_ann"] = _judge(w.users["ann"], round_a, "first")
    w.objects["judgment_alice"] = _judge(w.users["alice"], round_a, "second")
    w.objects["judgment_b"] = _judge(w.users["bob"], round_b, "tie")
    # A live lease of alice's in A, to judge or skip through the API.
    w.objects["lease_alice"] = assignment_claim_next(annotator=w.users["alice"], round_=round_a)
    w.objects["comparison_a"] = Comparison.objects.filter(round=round_a).order_by("id").first()
    w.objects["comparison_b"] = Comparison.objects.filter(round=round_b).order_by("id").first()
    return w
