"""Create the demo policies and a demo superuser, and print the login."""

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand

from resilience.models import BreakerPolicy

DEMO_POLICIES = {
    "demo-upstream": {"description": "The demo's flaky upstream."},  # + settings.DEMO_POLICY
    "payments-api": {
        "description": "Card payments provider.",
        "failure_threshold": 5,
        "failure_rate_threshold": 50,
        "slow_call_ms": 1000,  # also times every call: latency percentiles in the admin charts
        "critical": True,
    },
    "search": {"description": "Full-text search service.", "mode": "monitor", "slow_call_ms": 500},
}


class Command(BaseCommand):
    help = "Create demo policies and the demo superuser (idempotent)."

    def add_arguments(self, parser):
        parser.add_argument("--username", default="admin")
        parser.add_argument("--password", default="admin")

    def handle(self, *args, username: str, password: str, **options):
        for name, values in DEMO_POLICIES.items():
            if name == "demo-upstream":
                values = {**settings.DEMO_POLICY, **values}
            BreakerPolicy.objects.get_or_create(name=name, defaults=values)
        user_model = get_user_model()
        user, created = user_model.objects.get_or_create(
            username=username, defaults={"email": "admin@example.com"}
        )
        if created:
            user.is_staff = user.is_superuser = True
            user.set_password(password)
            user.save()
        self.stdout.write(self.style.SUCCESS("Demo ready."))
        self.stdout.write(f"  Admin login: {username} / {password if created else '(unchanged)'}")
