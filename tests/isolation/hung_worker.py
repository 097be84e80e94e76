"""A process whose protected call hangs (``python -m tests.isolation.hung_worker SECONDS``).

Run with ``DJANGO_SETTINGS_MODULE=tests.support.procsettings`` (``RESILIENCE`` from the
environment): it migrates its own database, prints ``inside`` when the call has started and
``returned <result>`` when the hung call finally returns.
"""

import sys
import time

import django

django.setup()

from django.core.management import call_command  # noqa: E402 - after django.setup()

from resilience import circuit_breaker  # noqa: E402

call_command("migrate", verbosity=0)


@circuit_breaker("hang-x")
def hang(seconds: float) -> str:
    print("inside", flush=True)
    time.sleep(seconds)
    return "late"


print("returned", hang(float(sys.argv[1])), flush=True)
