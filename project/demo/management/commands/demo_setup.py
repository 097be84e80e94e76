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
        self.revision_history(user)
        self.stdout.write(self.style.SUCCESS("Demo ready."))
        self.stdout.write(f"  Admin login: {username} / {password if created else '(unchanged)'}")

    @staticmethod
    def revision_history(user) -> None:
        """Two edits of payments-api, so its Revisions box shows a diff and a revert button
        (docs/admin.md, "Policy revisions"); once only."""
        policy = BreakerPolicy.objects.get(name="payments-api")
        if policy.revisions.filter(source="admin").exists():
            return
        with BreakerPolicy.audit(actor=user, reason="INC-7: trip sooner", source="admin"):
            policy.failure_threshold, policy.recovery_timeout = 3, 30
            policy.save()
        with BreakerPolicy.audit(actor=user, reason="INC-7: back to normal", source="admin"):
            policy.failure_threshold = 5
            policy.save()
