"""auth401._lookup: the user + AccountStatus query compiled once per connection gives what
``manager.select_related("auth401_status").get(field=value)`` gives, with one query."""

import threading
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import UserManager
from django.db import connection, connections, models
from django.test.utils import CaptureQueriesContext

from auth401 import _lookup, accounts
from auth401._lookup import (
    CONNECTION_ATTRIBUTE,
    STATUS_RELATION,
    StatusManager,
    get_user_with_status,
    lookup_with_status,
    stock_manager,
)
from auth401.models import AccountStatus

User = get_user_model()


def orm(field: str, value: Any) -> Any:
    return User._default_manager.select_related(STATUS_RELATION).get(**{field: value})


def fast(field: str, value: Any) -> Any:
    return lookup_with_status(User._default_manager, field, value)


def fields(user: Any) -> dict[str, Any]:
    return {f.attname: getattr(user, f.attname) for f in user._meta.concrete_fields}


def outcome(call: Any, field: str, value: Any) -> Any:
    """What a lookup gives: the user's pk, or the exception's type and message."""
    try:
        return ("user", call(field, value).pk)
    except Exception as exc:
        return (type(exc), str(exc))


def compiled_entries(wrapper: Any = connection) -> dict:
    return getattr(wrapper, CONNECTION_ATTRIBUTE, {})


@pytest.fixture
def compiled_only(monkeypatch):
    """The compiled path must answer: the ORM fallback fails the test."""

    def orm_get(*args: Any) -> Any:
        raise AssertionError(f"ORM path taken: {args!r}")

    monkeypatch.setattr(_lookup, "orm_get", orm_get)


@pytest.fixture
def locked(account_factory):
    return account_factory("locked", reason="test")


def test_same_user_as_the_orm_with_a_status_row(locked, django_assert_num_queries, compiled_only):
    expected = orm("pk", locked.pk)
    with django_assert_num_queries(1):
        user = fast("pk", locked.pk)
    assert type(user) is User
    assert fields(user) == fields(expected)
    assert user._state.db == expected._state.db
    assert user._state.adding is False
    with django_assert_num_queries(0):
        status = user.auth401_status
        assert accounts.cached_status(user) is status
    assert fields(status) == fields(expected.auth401_status)
    assert status.state == AccountStatus.State.LOCKED
    assert status.user is user  # the reverse side is cached too, as by select_related


def test_same_user_as_the_orm_without_a_status_row(user, django_assert_num_queries, compiled_only):
    expected = orm("username", user.username)
    with django_assert_num_queries(1):
        found = fast("username", user.username)
    assert fields(found) == fields(expected)
    with django_assert_num_queries(0):
        with pytest.raises(AccountStatus.DoesNotExist):
            _ = found.auth401_status
        with pytest.raises(User.auth401_status.RelatedObjectDoesNotExist):
            _ = found.auth401_status
        assert accounts.cached_status(found) is None


def test_one_query_the_same_sql_as_the_orm(user, compiled_only):
    fast("pk", user.pk)  # compiled
    for field, value in (("pk", user.pk), ("username", user.username), ("id", str(user.pk))):
        with CaptureQueriesContext(connection) as theirs:
            orm(field, value)
        with CaptureQueriesContext(connection) as ours:
            fast(field, value)
        assert len(ours) == 1
        assert [q["sql"] for q in ours] == [q["sql"] for q in theirs]
        assert "JOIN" in ours[0]["sql"] and AccountStatus._meta.db_table in ours[0]["sql"]


def test_compiled_once_per_connection_and_field(user):
    compiled_entries().clear()
    fast("pk", user.pk)
    entry = compiled_entries()[(User, "objects", "pk")]
    with pytest.raises(User.DoesNotExist):
        fast("pk", user.pk + 1000)
    assert compiled_entries()[(User, "objects", "pk")] is entry
    assert entry.compiler.connection is connections["default"]
    fast("username", user.username)
    assert set(compiled_entries()) == {(User, "objects", "pk"), (User, "objects", "username")}


def test_does_not_exist_as_the_orm(user):
    for field, value in (("pk", user.pk + 1000), ("username", "nobody")):
        assert outcome(fast, field, value) == outcome(orm, field, value)
        assert outcome(fast, field, value)[0] is User.DoesNotExist


@pytest.mark.parametrize(
    "value",
    ["5", "abc", "", " 7 ", None, 2**70, -(2**70), 1.0, [1], {}, b"1", True],
    ids=repr,
)
def test_primary_key_values_as_the_orm(user_factory, value):
    users = [user_factory(f"u{i}") for i in range(8)]
    compiled_entries().clear()
    fast("pk", users[0].pk)  # compiled with a valid value first, then given this one
    for value_ in (value, str(users[1].pk), users[1].pk):
        assert outcome(fast, "pk", value_) == outcome(orm, "pk", value_)
    compiled_entries().clear()
    assert outcome(fast, "pk", value) == outcome(orm, "pk", value)  # compiled with this one
    assert outcome(fast, "pk", users[2].pk) == ("user", users[2].pk)


def test_refused_values_raise_what_callers_catch(user, compiled_only):
    fast("pk", user.pk)
    with pytest.raises(ValueError):
        fast("pk", "abc")
    with pytest.raises(TypeError):
        fast("pk", [1])
    assert outcome(fast, "pk", 2**70)[0] is User.DoesNotExist  # out of range: no match


def test_username_is_an_exact_lookup(user_factory, compiled_only):
    user_factory("Alice")
    for value in ("Alice", "alice", "ALICE", "Alice "):
        assert outcome(fast, "username", value) == outcome(orm, "username", value)
    assert outcome(fast, "username", "Alice")[0] == "user"


def test_values_that_need_preparing(user):
    """A datetime goes through the field's get_db_prep_value (SQLite stores text), and the
    row's columns through the converters; None is the ORM's IS NULL."""
    expected = orm("date_joined", user.date_joined)
    fast("date_joined", user.date_joined)
    entry = compiled_entries()[(User, "objects", "date_joined")]
    assert fields(entry.get(user.date_joined)) == fields(expected)  # the compiled path
    assert fast("last_login", None).pk == orm("last_login", None).pk == user.pk


def test_more_than_one_row_as_the_orm(user_factory):
    for i in range(3):
        user_factory(f"same-{i}", first_name="Same")
    got = outcome(fast, "first_name", "Same")
    assert got == outcome(orm, "first_name", "Same")
    assert got[0] is User.MultipleObjectsReturned
    for i in range(3, 22):
        user_factory(f"same-{i}", first_name="Same")
    assert outcome(fast, "first_name", "Same") == outcome(orm, "first_name", "Same")


def test_get_user_with_status_and_the_jwt_stand_in(locked, django_assert_num_queries):
    with django_assert_num_queries(1):
        user = get_user_with_status(pk=locked.pk)
    with django_assert_num_queries(0):
        assert user.auth401_status.state == AccountStatus.State.LOCKED
    objects = StatusManager(User.objects)
    with django_assert_num_queries(1):
        assert objects.get(id=locked.pk) == locked
    assert objects.filter(pk=locked.pk).count() == 1  # the select_related QuerySet otherwise
    assert objects.get(pk=locked.pk, username=locked.username) == locked


@pytest.mark.django_db(transaction=True)
def test_works_after_the_connection_is_closed(user_factory):
    user = user_factory()
    fast("pk", user.pk)
    entry = compiled_entries()[(User, "objects", "pk")]
    connection.close()
    assert connection.connection is None
    assert fast("pk", user.pk).pk == user.pk  # reconnects
    assert compiled_entries()[(User, "objects", "pk")] is entry
    # A new wrapper for the alias starts without entries and compiles its own.
    original = connections["default"]
    wrapper = connections.create_connection("default")
    connections["default"] = wrapper
    try:
        assert compiled_entries(wrapper) == {}
        assert fast("pk", user.pk).pk == user.pk
        assert compiled_entries(wrapper)[(User, "objects", "pk")].compiler.connection is wrapper
    finally:
        connections["default"] = original
        wrapper.close()


@pytest.mark.django_db(transaction=True)
def test_each_thread_compiles_on_its_own_connection(user_factory):
    user = user_factory()
    fast("pk", user.pk)
    main_entry = compiled_entries()[(User, "objects", "pk")]
    seen: dict[str, Any] = {}

    def work() -> None:
        try:
            wrapper = connections["default"]
            seen["wrapper"] = wrapper
            seen["before"] = dict(compiled_entries(wrapper))
            seen["pk"] = fast("pk", user.pk).pk
            seen["entry"] = compiled_entries(wrapper)[(User, "objects", "pk")]
        except Exception as exc:  # pragma: no cover - reported below
            seen["error"] = exc
        finally:
            connections.close_all()

    thread = threading.Thread(target=work)
    thread.start()
    thread.join()
    assert "error" not in seen, seen.get("error")
    assert seen["wrapper"] is not connections["default"]
    assert seen["before"] == {}
    assert seen["pk"] == user.pk
    assert seen["entry"] is not main_entry
    assert seen["entry"].compiler.connection is seen["wrapper"]
    assert compiled_entries()[(User, "objects", "pk")] is main_entry


def test_stock_manager_decision():
    assert stock_manager(User._default_manager)
    assert stock_manager(User.objects)

    class Filtering(UserManager):
        def get_queryset(self) -> Any:
            return super().get_queryset().filter(is_active=True)

    class OwnQuerySet(models.QuerySet):
        pass

    assert not stock_manager(Filtering())
    assert not stock_manager(UserManager.from_queryset(OwnQuerySet)())
    assert not stock_manager(object())


def test_a_custom_manager_takes_the_orm_path(account_factory, monkeypatch):
    inactive = account_factory("inactive")
    active = account_factory("active")
    original = UserManager.get_queryset

    def get_queryset(self: Any) -> Any:
        return original(self).filter(is_active=True)

    monkeypatch.setattr(UserManager, "get_queryset", get_queryset)
    assert not stock_manager(User._default_manager)
    compiled_entries().clear()
    with pytest.raises(User.DoesNotExist):
        fast("pk", inactive.pk)  # the manager's filter applies
    assert fast("pk", active.pk).pk == active.pk
    assert compiled_entries() == {}


def test_a_query_that_is_not_one_parameter_is_not_compiled(user, monkeypatch):
    compiled_entries().clear()
    calls = []
    original = _lookup.orm_get

    def orm_get(*args: Any) -> Any:
        calls.append(args)
        return original(*args)

    monkeypatch.setattr(_lookup, "orm_get", orm_get)
    manager = User._default_manager
    found = lookup_with_status(manager, "username__iexact", user.username.upper())
    assert found.pk == user.pk
    assert compiled_entries()[(User, "objects", "username__iexact")] is _lookup._NOT_COMPILABLE
    lookup_with_status(manager, "username__iexact", user.username)
    assert len(calls) == 2
