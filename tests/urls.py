"""The example project's URLs plus views that only the tests need."""

from django.urls import include, path
from rest_framework.permissions import AllowAny, IsAuthenticated
from rest_framework.response import Response
from rest_framework.views import APIView
from rest_framework_simplejwt.views import TokenVerifyView

from auth401 import authentication


class WhoAmI(APIView):
    permission_classes = [IsAuthenticated]

    def get(self, request):
        return Response({"username": request.user.get_username()})

    def post(self, request):
        return Response({"username": request.user.get_username()})


def ordered(*classes):
    return WhoAmI.as_view(authentication_classes=list(classes))


class Public(APIView):
    permission_classes = [AllowAny]

    def get(self, request):
        return Response({"user": request.user.get_username() or None})


urlpatterns = [
    path("", include("example_project.urls")),
    path("api/public/", Public.as_view()),
    path("api/token/verify/", TokenVerifyView.as_view()),
    path(
        "api/order/session-first/",
        ordered(
            authentication.SessionAuthentication,
            authentication.BasicAuthentication,
            authentication.JWTAuthentication,
        ),
    ),
    path("api/order/session-only/", ordered(authentication.SessionAuthentication)),
    path("api/order/basic-only/", ordered(authentication.BasicAuthentication)),
    path("api/order/jwt-only/", ordered(authentication.JWTAuthentication)),
    path(
        "api/order/token-first/",
        ordered(authentication.TokenAuthentication, authentication.JWTAuthentication),
    ),
]

from rest_framework.authtoken.views import obtain_auth_token  # noqa: E402

# DRF's own login view: it calls authenticate() and answers a ValidationError (400) that DRF's
# handler rolls back under ATOMIC_REQUESTS.
urlpatterns.append(path("api/authtoken/", obtain_auth_token))
