"""A real Celery worker process, over the real Redis broker, against the real test database."""

import os
import subprocess
import sys
import time
from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from annotation.models import Assignment, Comparison
from annotation.services.leases import assignment_claim_next
from tests.factories import UserFactory, add_member, make_round
from workers import tasks

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def worker():
    db = connection.settings_dict
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "webapp.settings_test",
        "DATABASE_URL": f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}",
    }
    # A queue name of its own, so no other worker on this machine takes our messages.
    queue = f"test-{os.getpid()}"
    proc = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "workers", "worker", "-Q", queue, "--pool", "solo", "-l", "warning"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        yield queue
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()


def test_worker_expires_stale_leases(worker):
    round_ = make_round(prompts=1, samples_per_prompt=2, overlap=1)
    alice = UserFactory()
    add_member(round_.campaign, alice)
    lease = assignment_claim_next(annotator=alice, round_=round_)
    Assignment.objects.filter(id=lease.id).update(expires_at=timezone.now() - timedelta(seconds=5))

    tasks.leases_expire.apply_async(queue=worker)

    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if Assignment.objects.get(id=lease.id).status == Assignment.Status.EXPIRED:
            break
        time.sleep(0.2)
    assert Assignment.objects.get(id=lease.id).status == Assignment.Status.EXPIRED
    assert Comparison.objects.get().slots_taken == 0


def test_celery_accepts_json_only():
    from workers.celery import app

    assert app.conf.accept_content == ["json"]
    assert app.conf.task_serializer == "json"
    assert app.conf.result_serializer == "json"
