"""factory-boy factories for the resilience models."""

import factory
from django.contrib.auth import get_user_model

from resilience.models import BreakerPolicy, CircuitEvent


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = get_user_model()
        django_get_or_create = ("username",)

    username = factory.Sequence(lambda n: f"user{n}")
    email = factory.LazyAttribute(lambda u: f"{u.username}@example.com")
    password = factory.django.Password("pw")
    is_staff = True


class BreakerPolicyFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = BreakerPolicy
        django_get_or_create = ("name",)

    name = factory.Sequence(lambda n: f"circuit-{n}")
    description = "A test circuit."


class CircuitEventFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = CircuitEvent

    circuit = factory.LazyAttribute(lambda e: e.policy.name if e.policy else "circuit")
    policy = factory.SubFactory(BreakerPolicyFactory)
    kind = "opened"
    from_state = "closed"
    to_state = "open"
    failure_count = 5
