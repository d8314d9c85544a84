"""``load_user()``: a user and its ``AccountStatus``, as every auth401 path loads them.

The JWT class, the API-token, session and Basic paths, the backend and the refresh serializer
all ask this module, so "load a user with its status" is written once, with one list of the
values that cannot name a user (``None`` is answered for them, never an exception).

Two ways, chosen once per user model, database and field:

- **statement** (PostgreSQL, a default manager that does not change its queryset, a user model
  in one table): one ``SELECT`` of the user's and the status's columns with a ``LEFT JOIN``,
  written once from the documented ``_meta`` Options API (``db_table``, ``concrete_fields``,
  ``Field.column``) and run through ``connection.cursor()``; the instances are made by
  ``Model.from_db()`` after each field's own ``get_db_prep_value()`` / ``from_db_value()``,
  and the status is attached through the public reverse one-to-one relation.  Nothing is
  compiled per request, so it costs less than the ORM query it replaces.
- **orm**: ``manager.select_related("auth401_status").get(...)`` (every other case: other
  databases, custom managers, multi-table user models).

``auth401.I003`` (``manage.py check --deploy``, on PostgreSQL) says when the ORM is used, and why.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.base_user import BaseUserManager
from django.core.exceptions import ValidationError
from django.core.signals import setting_changed
from django.db import connections, models, router

from .models import AccountStatus

#: the reverse relation user -> AccountStatus, joined wherever a user is loaded to be checked
STATUS_RELATION = AccountStatus.user.field.related_query_name()

#: values that cannot name a user: ``load_user`` answers None for them
BAD_VALUES = (ValueError, TypeError, OverflowError, ValidationError)


def _quote(name: str | None) -> str:
    return '"' + str(name).replace('"', '""') + '"'


@dataclass(frozen=True)
class Way:
    """How users are loaded by one field: ``kind`` is "statement" or "orm"."""

    kind: str
    why: str


class _Statement:
    """One prebuilt SELECT of a user (by one field) and its status (PostgreSQL)."""

    def __init__(self, model: type[models.Model], field: models.Field, alias: str) -> None:
        self.model = model
        self.field = field
        self.alias = alias
        self.user_fields = list(model._meta.concrete_fields)
        self.status_fields = list(AccountStatus._meta.concrete_fields)
        user_table = _quote(model._meta.db_table)
        status_table = _quote(AccountStatus._meta.db_table)
        columns = [f"{user_table}.{_quote(f.column)}" for f in self.user_fields]
        columns += [f"{status_table}.{_quote(f.column)}" for f in self.status_fields]
        join_column = _quote(AccountStatus._meta.get_field("user").column)
        user_pk = _quote(model._meta.pk.column)
        self.sql = (
            f"SELECT {', '.join(columns)} FROM {user_table} "
            f"LEFT OUTER JOIN {status_table} ON {status_table}.{join_column} = "
            f"{user_table}.{user_pk} WHERE {user_table}.{_quote(field.column)} = %s LIMIT 2"
        )
        self.user_names = [f.attname for f in self.user_fields]
        self.status_names = [f.attname for f in self.status_fields]
        self.split = len(self.user_fields)
        # Fields that turn database values into Python ones themselves (custom fields,
        # JSONField): their documented from_db_value() runs on every row.
        self.user_converters = [
            (i, f) for i, f in enumerate(self.user_fields) if hasattr(f, "from_db_value")
        ]
        self.status_converters = [
            (i, f) for i, f in enumerate(self.status_fields) if hasattr(f, "from_db_value")
        ]
        status_pk = AccountStatus._meta.pk
        self.status_pk_index = self.status_fields.index(status_pk)
        self.status_defaults = [
            None if f.primary_key else f.get_default() for f in self.status_fields
        ]

    def run(self, value: Any) -> Any:
        connection = connections[self.alias]
        param = self.field.get_db_prep_value(value, connection, prepared=False)
        with connection.cursor() as cursor:
            cursor.execute(self.sql, [param])
            rows = cursor.fetchmany(2)
        if len(rows) != 1:
            return None
        row = list(rows[0])
        user_values = row[: self.split]
        for i, field in self.user_converters:
            user_values[i] = field.from_db_value(user_values[i], None, connection)
        user = self.model.from_db(self.alias, self.user_names, user_values)
        status_values = row[self.split :]
        if status_values[self.status_pk_index] is None:
            # No row yet: an unsaved status with the defaults (``cached_status`` reads it as
            # "no row"), so that asking for it costs no query.
            status_values = list(self.status_defaults)
        else:
            for i, field in self.status_converters:
                status_values[i] = field.from_db_value(status_values[i], None, connection)
        status = AccountStatus.from_db(self.alias, self.status_names, status_values)
        setattr(user, STATUS_RELATION, status)
        return user


_ways: dict[tuple[Any, ...], Way] = {}
_statements: dict[tuple[Any, ...], _Statement] = {}
_build_lock = threading.Lock()


def way(model: Any = None, field_name: str = "pk") -> Way:
    """Which way users of ``model`` are loaded by ``field_name`` (for ``manage.py check``)."""
    model = model or get_user_model()
    alias = router.db_for_read(model)
    return _plan(model, field_name, alias)[0]


def _plan(model: Any, field_name: str, alias: str) -> tuple[Way, _Statement | None]:
    key = (model, field_name, alias)
    found = _ways.get(key)
    if found is not None:
        return found, _statements.get(key)
    with _build_lock:
        result = _decide(model, field_name, alias)
        _ways[key] = result[0]
        if result[1] is not None:
            _statements[key] = result[1]
    return result


def _decide(model: Any, field_name: str, alias: str) -> tuple[Way, _Statement | None]:
    vendor = connections[alias].vendor
    if vendor != "postgresql":
        return Way("orm", f"the database is {vendor}, not PostgreSQL"), None
    manager = model._default_manager
    if type(manager).get_queryset is not models.Manager.get_queryset:
        return (
            Way("orm", f"{type(manager).__name__}.get_queryset() may change which users exist"),
            None,
        )
    if model._meta.parents:
        return Way("orm", "the user model spans several tables (multi-table inheritance)"), None
    try:
        field = model._meta.pk if field_name == "pk" else model._meta.get_field(field_name)
    except Exception:
        return Way("orm", f"{field_name!r} is not a field of the user model"), None
    if not getattr(field, "concrete", False) or getattr(field, "column", None) is None:
        return Way("orm", f"{field_name!r} is not a column of the user model"), None
    statement = _Statement(model, field, alias)
    return Way("statement", "it joins the user and its AccountStatus"), statement


def load_user(field_name: str, value: Any) -> Any:
    """The user whose ``field_name`` is ``value``, with its ``AccountStatus`` attached (no
    further query reads it); None when no single user matches or the value cannot name one."""
    if value is None or (isinstance(value, str) and "\x00" in value):
        return None  # no stored value holds a NUL; PostgreSQL would refuse it
    model = get_user_model()
    alias = router.db_for_read(model)
    _, statement = _plan(model, field_name, alias)
    try:
        if statement is not None:
            return statement.run(value)
        manager = model._default_manager.select_related(STATUS_RELATION)
        return manager.get(**{field_name: value})
    except (model.DoesNotExist, model.MultipleObjectsReturned, *BAD_VALUES):
        return None


def load_by_natural_key(username: Any) -> tuple[Any, bool]:
    """(the user a login's username names or None, whether its status is attached): the
    user manager's ``get_by_natural_key`` when the project overrides it (a case-insensitive
    login, say), else ``load_user(USERNAME_FIELD, username)``."""
    model = get_user_model()
    manager = model._default_manager
    if type(manager).get_by_natural_key is BaseUserManager.get_by_natural_key:
        return load_user(model.USERNAME_FIELD, username), True
    if isinstance(username, str) and "\x00" in username:
        return None, False
    try:
        return manager.get_by_natural_key(username), False
    except (model.DoesNotExist, model.MultipleObjectsReturned, *BAD_VALUES):
        return None, False


def _reset(**kwargs: Any) -> None:
    if kwargs.get("setting") in ("AUTH_USER_MODEL", "DATABASES", "DATABASE_ROUTERS"):
        _ways.clear()
        _statements.clear()


setting_changed.connect(_reset, dispatch_uid="auth401_users_reset")
