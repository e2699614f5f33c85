"""Helpers for the few hot paths written as single SQL statements."""

import contextlib

from django.db import IntegrityError, connection, transaction

from annotation.models import Campaign, Round


def one_statement():
    """Context for running one self-contained statement.

    In autocommit mode a single statement is already atomic, so no BEGIN/COMMIT round trips are
    spent on it. Inside an outer transaction a savepoint keeps that transaction usable if the
    statement fails (e.g. on a unique violation the caller handles).
    """
    return transaction.atomic() if connection.in_atomic_block else contextlib.nullcontext()


def fast_row(sql: str, params: dict) -> tuple | None:
    """The first row of one self-contained statement (see :func:`one_statement`), or None where it
    returned none or a unique constraint refused it: a concurrent writer won the race, and the
    caller's general path decides."""
    try:
        with one_statement(), connection.cursor() as cursor:
            cursor.execute(sql, params)
            return cursor.fetchone()
    except IntegrityError:
        return None


def columns(model, alias: str) -> str:
    """Every concrete column of `model`, qualified by the table alias, in field order."""
    return ", ".join(f"{alias}.{f.column}" for f in model._meta.concrete_fields)


def loaded(model, **fields):
    """A model instance from columns already read; fields not given stay deferred (loaded if touched)."""
    # from_db takes values in the model's field order, whatever order the names are given in.
    names = [f.attname for f in model._meta.concrete_fields if f.attname in fields]
    return model.from_db("default", names, [fields[name] for name in names])


_ROUND_FIELDS = [f.attname for f in Round._meta.concrete_fields]
_CAMPAIGN_FIELDS = [f.attname for f in Campaign._meta.concrete_fields]
ROUND_AND_CAMPAIGN_COLUMNS = len(_ROUND_FIELDS) + len(_CAMPAIGN_FIELDS)


def round_and_campaign_columns(round_alias: str, campaign_alias: str) -> str:
    return f"{columns(Round, round_alias)}, {columns(Campaign, campaign_alias)}"


def round_with_campaign(values) -> Round:
    """A Round, its campaign loaded, from `round_and_campaign_columns` values."""
    n = len(_ROUND_FIELDS)
    round_ = Round.from_db("default", _ROUND_FIELDS, values[:n])
    round_.campaign = Campaign.from_db("default", _CAMPAIGN_FIELDS, values[n:])
    return round_
