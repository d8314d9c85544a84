from importlib.util import find_spec

from django.contrib import admin
from django.contrib.auth.views import LoginView, LogoutView
from django.urls import include, path
from rest_framework_simplejwt.views import TokenObtainPairView, TokenRefreshView

from auth401.forms import AuthenticationForm
from example_project import views

urlpatterns = [
    path("api/token/", TokenObtainPairView.as_view(), name="token_obtain_pair"),
    path("api/token/refresh/", TokenRefreshView.as_view(), name="token_refresh"),
    path("api/me/", views.MeView.as_view(), name="me"),
    path("api/staff/", views.StaffView.as_view(), name="staff"),
    path("api/throttled/", views.ThrottledView.as_view(), name="throttled"),
    path("api/legacy/", views.legacy, name="legacy"),
    path("api/legacy-forbidden/", views.legacy_forbidden, name="legacy-forbidden"),
    path(
        "accounts/login/",
        LoginView.as_view(
            template_name="registration/login.html",
            # auth401's form: a locked or suspended account sees why (detail and hint).
            authentication_form=AuthenticationForm,
        ),
        name="login",
    ),
    path("accounts/logout/", LogoutView.as_view(), name="logout"),
    path("admin/", admin.site.urls),
    # The self-service unlock link of the lock email (NOTIFY_OWNER).
    path("auth401/", include("auth401.urls")),
]

if find_spec("drf_spectacular") is not None:
    # /api/schema/ and a Swagger UI (its static files from drf_spectacular_sidecar) for anyone.
    from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView
    from rest_framework.permissions import AllowAny

    public = {"authentication_classes": [], "permission_classes": [AllowAny]}
    urlpatterns += [
        path("api/schema/", SpectacularAPIView.as_view(**public), name="schema"),
        path(
            "api/docs/",
            SpectacularSwaggerView.as_view(url_name="schema", **public),
            name="swagger-ui",
        ),
    ]
