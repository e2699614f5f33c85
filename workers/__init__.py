"""The Celery app and thin tasks. `celery -A workers worker -Q default` / `-Q gpu`."""

from workers.celery import app

__all__ = ["app"]
