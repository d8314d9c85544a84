"""The per-request state (``auth401.state``): one object per request, owned by the middleware,
whose after-response work runs once the response is closed (after it was sent)."""

from __future__ import annotations

import logging

import pytest
from django.http import HttpResponse
from django.test import RequestFactory
from rest_framework.request import Request

from auth401 import state
from auth401.middleware import Auth401Middleware
from tests.conftest import basic


def test_of_is_one_object_for_the_http_and_the_drf_request():
    request = RequestFactory().get("/")
    found = state.of(request)
    assert state.of(Request(request)) is found
    assert (found.managed, found.failure, found.scheme, found.after) == (False, None, None, [])


def test_unmanaged_work_runs_at_once():
    ran = []
    state.of(RequestFactory().get("/")).after_response(lambda: ran.append(1))
    assert ran == [1]


@pytest.mark.django_db
def test_the_middleware_runs_the_work_after_the_response_is_closed():
    ran = []

    def view(request):
        state.of(request).after_response(lambda: ran.append("work"))
        assert state.of(request).managed
        return HttpResponse("ok")

    middleware = Auth401Middleware(view)
    response = middleware(RequestFactory().get("/"))
    assert ran == []  # the answer did not wait for it
    response.close()  # what the server does once the response is sent
    assert ran == ["work"]


def test_a_failing_piece_of_work_is_logged_and_the_rest_runs(caplog):
    ran = []

    def broken():
        raise RuntimeError("boom")

    state.run([broken, lambda: ran.append(1)])
    assert ran == [1]
    assert any("after-response work" in r.getMessage() for r in caplog.records)


@pytest.mark.django_db
def test_the_backend_leaves_its_failure_in_the_state(user, client):
    from auth401.backends import stashed_failure

    captured = {}
    real = state.start

    def start(request):
        captured["request"] = request
        return real(request)

    state.start = start
    try:
        client.get("/api/me/", HTTP_AUTHORIZATION=basic("alice", "wrong"))
    finally:
        state.start = real
    failure = stashed_failure(captured["request"])
    assert failure.code == "credentials_invalid"
    assert state.of(captured["request"]).is_recorded(failure)


def test_unexpected_errors_are_logged_with_the_request_id(caplog, settings):
    settings.DEBUG = False
    request = RequestFactory().get("/api/boom/", HTTP_X_REQUEST_ID="req-42")
    middleware = Auth401Middleware(lambda r: HttpResponse())
    assert middleware.process_exception(request, ZeroDivisionError("x")) is None
    [record] = [r for r in caplog.records if r.name == "auth401"]
    assert record.levelno == logging.ERROR
    assert record.getMessage() == (
        "auth401: unexpected ZeroDivisionError on GET /api/boom/ request_id=req-42"
    )
    assert record.request_id == "req-42"
    assert record.exc_info[0] is ZeroDivisionError


@pytest.mark.django_db
def test_the_work_runs_once_however_often_the_response_is_closed():
    ran = []

    def view(request):
        state.of(request).after_response(lambda: ran.append("work"))
        return HttpResponse("ok")

    response = Auth401Middleware(view)(RequestFactory().get("/"))
    response.close()
    response.close()
    assert ran == ["work"]
