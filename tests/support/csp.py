"""A middleware (in tests/settings.py) that serves every response with the Content-Security-Policy
in ``settings.TEST_CONTENT_SECURITY_POLICY`` (read per response, so a test's ``settings`` fixture
turns it on for the live server too); nothing when it is unset."""

from collections.abc import Callable

from django.conf import settings
from django.http import HttpRequest, HttpResponse


class ContentSecurityPolicyMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        policy = getattr(settings, "TEST_CONTENT_SECURITY_POLICY", None)
        if policy:
            response["Content-Security-Policy"] = policy
        return response
