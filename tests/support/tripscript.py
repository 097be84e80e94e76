"""A ``manage.py shell -c`` script that opens a circuit in a project of its own (the demo's
copy) and waits for its alert e-mail file."""

TEMPLATE = """
import time
from pathlib import Path
from django.conf import settings
from resilience import breaker, events
for _ in range({failures}):
    try:
        with breaker({circuit!r}):
            raise ConnectionError("upstream down")
    except ConnectionError:
        pass
events.flush(timeout=30)
deadline = time.monotonic() + 30  # "sync" delivery sends from a background thread
while not list(Path(settings.EMAIL_FILE_PATH).glob("*.log")) and time.monotonic() < deadline:
    time.sleep(0.1)
"""


def trip_script(circuit: str, failures: int) -> str:
    """Open ``circuit`` with ``failures`` failed calls (its policy's ``failure_threshold``)."""
    return TEMPLATE.format(circuit=circuit, failures=failures)
