"""The session's user, read with one prepared statement per request."""

from django.contrib.auth import get_user_model
from django.contrib.auth.backends import ModelBackend
from django.db import connections, router


class SessionUserBackend(ModelBackend):
    """Django's model backend; only `get_user` (run on every request) skips the ORM's query compiler.

    Same rules: a missing or inactive user gets no session user.
    """

    def get_user(self, user_id):
        model = get_user_model()
        try:
            pk = model._meta.pk.to_python(user_id)
        except Exception:  # a malformed id in a session is no user, as in ModelBackend
            return None
        fields = model._meta.concrete_fields
        columns = ", ".join(connections["default"].ops.quote_name(f.column) for f in fields)
        sql = f"SELECT {columns} FROM {model._meta.db_table} WHERE {model._meta.pk.column} = %s"  # noqa: S608
        alias = router.db_for_read(model)
        with connections[alias].cursor() as cursor:
            cursor.execute(sql, [pk])
            row = cursor.fetchone()
        if row is None:
            return None
        user = model.from_db(alias, [f.attname for f in fields], row)
        return user if self.user_can_authenticate(user) else None
