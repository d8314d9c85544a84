"""Views of the auth401 example project.

The DRF views show auth401's answers from the exception handler; the two plain Django views under
/api/ show the middleware converting ``login_required`` redirects and ``PermissionDenied`` into
the same JSON body. ``ThrottledView`` shows that a throttle's 429 is not auth401's: it comes from
``FALLBACK_EXCEPTION_HANDLER`` (DRF's ``{"detail": ...}``, or drf-standardized-errors' shape).
"""

from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, JsonResponse
from rest_framework import serializers
from rest_framework.permissions import IsAdminUser, IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.throttling import UserRateThrottle
from rest_framework.views import APIView


class MeSerializer(serializers.Serializer):
    """The shape of /api/me/ (for the OpenAPI schema)."""

    id = serializers.IntegerField()
    username = serializers.CharField()
    email = serializers.CharField(allow_blank=True)
    is_staff = serializers.BooleanField()
    auth = serializers.CharField(allow_null=True, help_text="The class that authenticated.")


class StaffSerializer(serializers.Serializer):
    """The shape of /api/staff/ (for the OpenAPI schema)."""

    ok = serializers.BooleanField()
    username = serializers.CharField()


class MeView(APIView):
    """Any authenticated user: Basic, Token, Bearer JWT or session."""

    permission_classes = [IsAuthenticated]
    serializer_class = MeSerializer

    def get(self, request: Request) -> Response:
        user = request.user
        authenticator = request.successful_authenticator
        return Response(
            {
                "id": user.pk,
                "username": user.get_username(),
                "email": getattr(user, "email", ""),
                "is_staff": user.is_staff,
                "auth": type(authenticator).__name__ if authenticator is not None else None,
            }
        )


class StaffView(APIView):
    """Staff only: everyone else who authenticates gets 403 permission_denied."""

    permission_classes = [IsAdminUser]
    serializer_class = StaffSerializer

    def get(self, request: Request) -> Response:
        return Response({"ok": True, "username": request.user.get_username()})


class BurstThrottle(UserRateThrottle):
    """Three requests a minute per user (per address for anonymous requests)."""

    scope = "burst"
    rate = "3/min"


class ThrottledView(APIView):
    """Any authenticated user, at most three times a minute: then 429 ``throttled``."""

    permission_classes = [IsAuthenticated]
    throttle_classes = [BurstThrottle]
    serializer_class = StaffSerializer

    def get(self, request: Request) -> Response:
        return Response({"ok": True, "username": request.user.get_username()})


@login_required
def legacy(request: HttpRequest) -> JsonResponse:
    """A plain Django view: without a session, the middleware answers 401 instead of a redirect."""
    return JsonResponse({"ok": True})


def legacy_forbidden(request: HttpRequest) -> JsonResponse:
    """A plain Django view that always refuses: the middleware turns it into a JSON 403."""
    raise PermissionDenied
