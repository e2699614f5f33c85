"""Helpers for the few hot paths written as single SQL statements."""

import contextlib

from django.db import connection, transaction


def one_statement():
    """Context for running one self-contained statement.

    In autocommit mode a single statement is already atomic, so no BEGIN/COMMIT round trips are
    spent on it. Inside an outer transaction a savepoint keeps that transaction usable if the
    statement fails (e.g. on a unique violation the caller handles).
    """
    return transaction.atomic() if connection.in_atomic_block else contextlib.nullcontext()
