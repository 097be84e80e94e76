"""Views that stream through a protected generator (issue 12, defect 6), sync and async."""

import asyncio

from django.http import StreamingHttpResponse
from django.urls import path

from resilience import circuit_breaker


@circuit_breaker("feed")
def rows(count):
    for i in range(count):
        yield f"row {i}\n"


@circuit_breaker("afeed")
async def chunks(count):
    for i in range(count):
        await asyncio.sleep(0)
        yield f"chunk {i}\n"


def _feed(request):
    return StreamingHttpResponse(rows(3), content_type="text/plain")


async def _afeed(request):
    return StreamingHttpResponse(chunks(3), content_type="text/plain")


urlpatterns = [path("feed/", _feed), path("afeed/", _afeed)]
