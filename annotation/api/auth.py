"""`Authorization: Bearer <token>` (or `Token <token>`) authentication for the API.

Anything else in the header is left to the next authenticator (the browser session, which DRF
checks with CSRF on unsafe methods). A malformed, unknown, revoked or expired token gets a 401 that
says which.
"""

from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework.authentication import BaseAuthentication, get_authorization_header
from rest_framework.exceptions import AuthenticationFailed
from rest_framework.request import Request

from annotation.models import ApiToken
from annotation.tokens import TokenRefused, token_authenticate

KEYWORDS = (b"bearer", b"token")


def token_from_authorization(header: bytes) -> ApiToken | None:
    """The live token an `Authorization: Bearer <token>` (or `Token <token>`) header names.

    None when the header is absent or uses another scheme; TokenRefused (a 401, its message saying
    why) when it is malformed, unknown, revoked or expired. Plain Django views use this too (media).
    """
    parts = header.split()
    if not parts or parts[0].lower() not in KEYWORDS:
        return None
    if len(parts) != 2:
        raise TokenRefused("Malformed Authorization header: expected 'Bearer <token>'.")
    try:
        raw = parts[1].decode("ascii")
    except UnicodeDecodeError:
        raise TokenRefused("Malformed API token: expected loupe_<prefix>_<secret>.")
    return token_authenticate(raw=raw)


class ApiTokenAuthentication(BaseAuthentication):
    def authenticate(self, request: Request) -> tuple[object, ApiToken] | None:
        try:
            token = token_from_authorization(get_authorization_header(request))
        except TokenRefused as exc:
            raise AuthenticationFailed(exc.message)
        if token is None:
            return None
        return token.user, token

    def authenticate_header(self, request: Request) -> str:
        # Makes unauthenticated requests a 401 (with this challenge) rather than a 403.
        return 'Bearer realm="loupe"'


class ApiTokenScheme(OpenApiAuthenticationExtension):
    target_class = ApiTokenAuthentication
    name = "tokenAuth"

    def get_security_definition(self, auto_schema):
        return {
            "type": "http",
            "scheme": "bearer",
            "description": "An API token `loupe_<prefix>_<secret>`, created on the Tokens page. "
            "`Authorization: Token <token>` is accepted too.",
        }
