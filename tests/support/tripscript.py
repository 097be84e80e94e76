"""A ``manage.py shell -c`` script that opens a circuit in a project of its own (the demo's
copy, a new project) and waits until its alert e-mail is recorded as sent (wherever the
project's mailer puts it: the ``EMAIL_*`` settings or, on Django 6.1+, ``MAILERS``)."""

TEMPLATE = """
import time
from resilience import breaker, events
from resilience.models import AlertDelivery
for _ in range({failures}):
    try:
        with breaker({circuit!r}):
            raise ConnectionError("upstream down")
    except ConnectionError:
        pass
events.flush(timeout=30)
deadline = time.monotonic() + 30  # "sync" delivery sends from a background thread
sent = AlertDelivery.objects.filter(channel="email", status="sent")
while not sent.exists() and time.monotonic() < deadline:
    time.sleep(0.1)
"""


def trip_script(circuit: str, failures: int) -> str:
    """Open ``circuit`` with ``failures`` failed calls (its policy's ``failure_threshold``)."""
    return TEMPLATE.format(circuit=circuit, failures=failures)
