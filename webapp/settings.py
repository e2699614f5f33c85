"""One environment-driven settings module.

Production differs from development by environment variables, never by code. Every variable is
listed with a comment in `.env.example`. Nothing here imports torch.
"""

from pathlib import Path

import environ

BASE_DIR = Path(__file__).resolve().parent.parent
env = environ.Env()
if env.bool("DJANGO_READ_DOT_ENV_FILE", default=True):
    environ.Env.read_env(str(BASE_DIR / ".env"))  # local convenience; real environment variables win

DEBUG = env.bool("DJANGO_DEBUG", default=False)
SECRET_KEY = env("DJANGO_SECRET_KEY")  # no default: a missing key fails fast
ALLOWED_HOSTS = env.list("DJANGO_ALLOWED_HOSTS", default=["127.0.0.1", "localhost"])
CSRF_TRUSTED_ORIGINS = env.list("DJANGO_CSRF_TRUSTED_ORIGINS", default=[])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "django.contrib.postgres",
    "template_partials",
    "django_htmx",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",  # Swagger UI served from our own static files, no CDN
    "django_filters",
    "annotation",
    "training",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    "webapp.middleware.ContentSecurityPolicyMiddleware",
]

ROOT_URLCONF = "webapp.urls"
WSGI_APPLICATION = "webapp.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    }
]

DATABASES = {"default": env.db("DATABASE_URL", default="postgres://postgres@127.0.0.1:5432/loupe")}
# Persistent connections with health checks: cheap requests, and a restarted PostgreSQL is noticed.
DATABASES["default"]["CONN_MAX_AGE"] = env.int("DATABASE_CONN_MAX_AGE", default=60)
DATABASES["default"]["CONN_HEALTH_CHECKS"] = env.bool("DATABASE_CONN_HEALTH_CHECKS", default=True)
# Server-side binding lets psycopg prepare statements a connection repeats (after 5 uses), so the
# hot paths are planned once per connection instead of on every request.
# Django turns psycopg's statement preparation off by default (for transaction-mode poolers such as
# PgBouncer); set DATABASE_PREPARE_THRESHOLD= (empty) behind one of those.
DATABASES["default"].setdefault("OPTIONS", {})["server_side_binding"] = env.bool(
    "DATABASE_SERVER_SIDE_BINDING", default=True
)
_prepare = env.str("DATABASE_PREPARE_THRESHOLD", default="5")
DATABASES["default"]["OPTIONS"]["prepare_threshold"] = int(_prepare) if _prepare else None
# No ATOMIC_REQUESTS: services own their transactions.
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

REDIS_URL = env("REDIS_URL", default="redis://127.0.0.1:6379/0")
CACHES = {"default": {"BACKEND": "webapp.cache.ReusingRedisCache", "LOCATION": REDIS_URL}}
# Sessions live in Redis, written through to nothing else: every annotator request reads one.
SESSION_ENGINE = "django.contrib.sessions.backends.cache"
AUTHENTICATION_BACKENDS = ["webapp.auth.SessionUserBackend"]
SESSION_COOKIE_AGE = env.int("SESSION_COOKIE_AGE", default=60 * 60 * 12)

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "annotation:home"
LOGOUT_REDIRECT_URL = "login"
# Self sign-up is off unless a deployment turns it on explicitly.
LOUPE_SIGNUP_ENABLED = env.bool("LOUPE_SIGNUP_ENABLED", default=False)

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = Path(env("STATIC_ROOT", default=str(BASE_DIR / "staticfiles")))
STATICFILES_DIRS = [BASE_DIR / "static"]
MEDIA_ROOT = Path(env("MEDIA_ROOT", default=str(BASE_DIR / "var" / "media")))
MEDIA_URL = "/media/"  # never served directly: media goes through a permission-checked view
ARTIFACTS_ROOT = Path(env("ARTIFACTS_ROOT", default=str(BASE_DIR / "var" / "artifacts")))
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"},
}
if DEBUG:
    STORAGES["staticfiles"] = {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"}

# Imports from the admin read only below this folder on the server.
LOUPE_IMPORT_ROOT = Path(env("LOUPE_IMPORT_ROOT", default=str(BASE_DIR / "var" / "imports")))
# Media limits for imports (bytes, pixels, seconds).
LOUPE_MAX_IMAGE_BYTES = env.int("LOUPE_MAX_IMAGE_BYTES", default=20 * 1024 * 1024)
LOUPE_MAX_IMAGE_PIXELS = env.int("LOUPE_MAX_IMAGE_PIXELS", default=40_000_000)
LOUPE_MAX_VIDEO_BYTES = env.int("LOUPE_MAX_VIDEO_BYTES", default=200 * 1024 * 1024)
LOUPE_MAX_VIDEO_SECONDS = env.int("LOUPE_MAX_VIDEO_SECONDS", default=120)

# Celery: JSON only, Redis broker. The job row is the truth; messages only wake workers.
CELERY_BROKER_URL = env("CELERY_BROKER_URL", default=REDIS_URL)
CELERY_RESULT_BACKEND = None
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
CELERY_TASK_DEFAULT_QUEUE = "default"
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True

REST_FRAMEWORK = {
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "annotation.api.auth.ApiTokenAuthentication",  # Authorization: Bearer loupe_...
        "rest_framework.authentication.SessionAuthentication",  # the browser, CSRF-checked
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "EXCEPTION_HANDLER": "annotation.api.errors.api_exception_handler",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Loupe API",
    "DESCRIPTION": "Campaigns, rounds, samples, comparisons and judgments of Loupe, and judging through "
    "the API. Authenticate with `Authorization: Bearer <token>` (tokens are created on the Tokens page).",
    "VERSION": "0.1.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SCHEMA_PATH_PREFIX": "/api/v1",
    "COMPONENT_SPLIT_REQUEST": True,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "ENUM_NAME_OVERRIDES": {
        "ChoiceEnum": "annotation.models.Choice",
        "SampleKindEnum": "annotation.models.Sample.Kind",
        "JobKindEnum": [("generation", "Generation")],
    },
}

# Security headers. HTTPS-only settings are on unless DEBUG, so `check --deploy` passes in production.
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
SESSION_COOKIE_HTTPONLY = True
SECURE_SSL_REDIRECT = env.bool("DJANGO_SECURE_SSL_REDIRECT", default=not DEBUG)
SESSION_COOKIE_SECURE = env.bool("DJANGO_SECURE_COOKIES", default=not DEBUG)
CSRF_COOKIE_SECURE = SESSION_COOKIE_SECURE
SECURE_HSTS_SECONDS = env.int("DJANGO_HSTS_SECONDS", default=0 if DEBUG else 31536000)
SECURE_HSTS_INCLUDE_SUBDOMAINS = not DEBUG
SECURE_HSTS_PRELOAD = not DEBUG
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": env("LOG_LEVEL", default="WARNING")},
}
