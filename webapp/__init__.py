"""Loupe's Django project: settings, URLs and WSGI/ASGI entry points. Configuration only."""
