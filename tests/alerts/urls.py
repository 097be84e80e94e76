"""A view whose upstream always fails, for the ATOMIC_REQUESTS test."""

import uuid

from django.contrib.auth import get_user_model
from django.http import HttpResponse
from django.urls import path

from resilience import circuit_breaker


@circuit_breaker("atomic-upstream")
def upstream() -> None:
    raise ConnectionError("upstream answered 502")


def checkout(request):
    get_user_model().objects.create(username=f"visitor-{uuid.uuid4().hex}")  # rolled back
    upstream()
    return HttpResponse("paid")


urlpatterns = [path("checkout/", checkout)]
