"""Celery application. JSON only; settings come from Django's CELERY_* settings."""

import os

from celery import Celery
from celery.signals import task_postrun, task_prerun

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "webapp.settings")

app = Celery("loupe")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.conf.task_routes = {"generation.*": {"queue": "gpu"}, "training.*": {"queue": "gpu"}}
app.autodiscover_tasks(["workers"], related_name="tasks")


@task_prerun.connect
@task_postrun.connect
def _close_stale_db_connections(**_kwargs: object) -> None:
    # A worker outlives database restarts; drop connections that went bad between tasks.
    from django.db import close_old_connections

    close_old_connections()
