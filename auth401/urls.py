"""auth401's URLs: ``path("auth401/", include("auth401.urls"))``.

``auth401:unlock``: the self-service unlock link of the lock email (``NOTIFY_OWNER``).
"""

from django.urls import path

from . import views

app_name = "auth401"

urlpatterns = [
    path("unlock/<str:token>/", views.unlock, name="unlock"),
]
