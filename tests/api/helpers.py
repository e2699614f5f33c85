"""Helpers for the API tests: the world's shape, and a client per role."""

from dataclasses import dataclass, field

from django.test import Client

from annotation.models import Round


@dataclass
class World:
    round_a: Round
    round_b: Round
    users: dict = field(default_factory=dict)
    tokens: dict = field(default_factory=dict)  # name -> plaintext
    objects: dict = field(default_factory=dict)


def client_for(world: World, role: str, **kwargs) -> Client:
    """A test client acting as `role`: anonymous, one of the tokens, or a session of a user."""
    if role == "anonymous":
        return Client(**kwargs)
    if role in world.tokens:
        return Client(headers={"Authorization": f"Bearer {world.tokens[role]}"}, **kwargs)
    session_user = {
        "annotator_session": "alice",
        "other_researcher": "oscar",
        "researcher": "rita",
        "admin": "admin",
    }.get(role, role)
    client = Client(**kwargs)
    client.force_login(world.users[session_user])
    return client


ROLES = [
    "anonymous",
    "other_token",
    "ro_token",
    "write_token",
    "annotator_session",
    "other_researcher",
    "researcher",
    "admin",
]
