"""The session's user, read with one prepared statement per request."""

from django.contrib.auth import get_user_model
from django.contrib.auth.backends import ModelBackend


class SessionUserBackend(ModelBackend):
    """Django's model backend; only `get_user` (run on every request) skips the ORM's query compiler.

    Same rules: an inactive user gets no session user.
    """

    def get_user(self, user_id):
        user_model = get_user_model()
        try:
            pk = user_model._meta.pk.to_python(user_id)
        except Exception:  # a malformed id in a session is no user, as in ModelBackend
            return None
        table, pk_column = user_model._meta.db_table, user_model._meta.pk.column
        rows = list(user_model.objects.raw(f"SELECT * FROM {table} WHERE {pk_column} = %s", [pk]))  # noqa: S608
        user = rows[0] if rows else None
        return user if user is not None and self.user_can_authenticate(user) else None
