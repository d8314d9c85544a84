"""The one small API every stack serves: the token pair endpoint and ``/api/me/``."""

from django.urls import path
from rest_framework_simplejwt.views import TokenObtainPairView

from example_project.views import MeView

urlpatterns = [
    path("api/token/", TokenObtainPairView.as_view(), name="token_obtain_pair"),
    path("api/me/", MeView.as_view(), name="me"),
]
