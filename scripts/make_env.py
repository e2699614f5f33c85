"""Print a local .env for the demo: a fresh secret key and plain-HTTP settings for 127.0.0.1."""

import secrets

print(f"DJANGO_SECRET_KEY={secrets.token_urlsafe(50)}")
print("DJANGO_DEBUG=false")
print("DJANGO_ALLOWED_HOSTS=127.0.0.1,localhost")
print("# The demo serves plain HTTP on 127.0.0.1; production keeps these on (the default).")
print("DJANGO_SECURE_SSL_REDIRECT=false")
print("DJANGO_SECURE_COOKIES=false")
print("DJANGO_HSTS_SECONDS=0")
print("DATABASE_URL=postgres://postgres@127.0.0.1:5432/loupe")
print("REDIS_URL=redis://127.0.0.1:6379/0")
print("CELERY_BROKER_URL=redis://127.0.0.1:6379/0")
