"""A URLconf without ``auth401.urls`` (the unlock link cannot be built)."""

from django.urls import path
from rest_framework_simplejwt.views import TokenObtainPairView

urlpatterns = [path("api/token/", TokenObtainPairView.as_view())]
