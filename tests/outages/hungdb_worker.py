"""A fresh Django process whose database hangs: times the first protected calls.

``python -m tests.outages.hungdb_worker`` with ``DATABASE_URL`` pointing at a hung database
prints one JSON line: the result and duration of the first call of two new circuits.
"""

import json
import os
import time

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.settings")

import django  # noqa: E402

django.setup()

from resilience import circuit_breaker  # noqa: E402
from resilience.policies import registry  # noqa: E402


@circuit_breaker("hung-db-first")
def first() -> str:
    return "first"


@circuit_breaker("hung-db-second")
def second() -> str:
    return "second"


report = {}
for call in (first, second):
    started = time.monotonic()
    result = call()
    report[result] = time.monotonic() - started
report["waits_now"] = registry._may_wait()
print(json.dumps(report), flush=True)
os._exit(0)  # the policy thread is stuck in the hung database: do not wait for it
