"""manage.py resilience replay on a private Redis: the story recorded through real breakers
(tests/support/replaystory.py), its history and transitions read back from Redis and the
database, replayed under the current and a stricter policy."""

import json
import uuid
from io import StringIO

import pytest
from django.core.management import call_command

from resilience import events
from resilience.backends import get_backend
from resilience.models import BreakerPolicy
from resilience.policies import registry
from tests.factories import BreakerPolicyFactory
from tests.support import replaystory

pytestmark = pytest.mark.django_db(transaction=True)  # events are stored by another thread
NAME = "replay-redis"


@pytest.fixture
def redis_story(redis_url, clock, settings):
    settings.RESILIENCE = {
        "BACKEND": "resilience.backends.redis.RedisBackend",
        "OPTIONS": {
            "url": redis_url,
            "prefix": f"replay{uuid.uuid4().hex[:8]}",
            "socket_timeout": 2.0,
            "clock": clock,
        },
    }
    backend = get_backend()
    BreakerPolicyFactory(name=NAME, **replaystory.POLICY)
    registry.refresh()
    replaystory.record(NAME, clock, backend)
    yield backend
    assert events.flush(timeout=10)


def replay(*args):
    out = StringIO()
    call_command("resilience", "replay", NAME, *args, "--json", stdout=out, stderr=StringIO())
    return json.loads(out.getvalue())


def test_the_history_on_redis_replays_like_the_story(redis_story):
    buckets = redis_story.history(
        NAME, redis_story.clock.now_ms() - 120_000, redis_story.clock.now_ms()
    )
    assert sum(b["calls"] for b in buckets) == 49
    assert sum(b["rejected_open"] for b in buckets) == 12
    report = replay()
    actual, proposed = report["actual"], report["proposed"]
    assert (actual["opened"], actual["open_seconds"], actual["rejected"]) == (1, 60.5, 12)
    assert actual["replayed"] == {k: proposed[k] for k in actual["replayed"]}
    assert (proposed["opened"], proposed["open_seconds"], proposed["rejected"]) == (1, 60.5, 12)
    assert proposed["estimated"] == 0
    # The stricter policy of tests/test_replay.py's hand computation.
    before = BreakerPolicy.objects.values().get(name=NAME)
    stricter = replay("--set", "failure_threshold=3", "--set", "recovery_timeout=80")["proposed"]
    assert (stricter["opened"], stricter["rejected"], stricter["open_seconds"]) == (1, 33, 80.25)
    assert BreakerPolicy.objects.values().get(name=NAME) == before
