"""What counts as a failure, remembered per exception class by a route (``Route.judge``)."""

import pytest

from resilience import breaker, circuit_breaker
from tests.factories import BreakerPolicyFactory

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("memory_backend")]


def raising(name, exc_factory, **options):
    @circuit_breaker(name, **options)
    def call(*args):
        raise exc_factory(*args)

    return call


def consecutive(name):
    return breaker(name).snapshot()["consecutive_failures"]


def test_a_remembered_verdict_gives_the_same_answer_every_time():
    BreakerPolicyFactory(name="remembered", failure_threshold=100)
    counted = raising("remembered", ConnectionError, record=(OSError,), ignore=(KeyError,))
    ignored = raising("remembered", KeyError, record=(OSError,), ignore=(KeyError,))
    unrecorded = raising("remembered", ValueError, record=(OSError,), ignore=(KeyError,))
    for round_ in range(1, 4):
        with pytest.raises(ConnectionError):
            counted()
        with pytest.raises(KeyError):
            ignored()
        with pytest.raises(ValueError):
            unrecorded()
        assert consecutive("remembered") == round_


class _TransientMeta(type):
    """An exception class whose instances are "transient" by a flag, not by their class."""

    def __instancecheck__(cls, instance):
        return getattr(instance, "transient", False)


class Transient(Exception, metaclass=_TransientMeta):
    pass


class Flagged(Exception):
    def __init__(self, transient):
        super().__init__(transient)
        self.transient = transient


def test_an_instance_dependent_instancecheck_is_asked_for_every_exception():
    BreakerPolicyFactory(name="by-instance", failure_threshold=100)
    call = raising("by-instance", Flagged, ignore=(Transient,))
    for transient, expected in ((True, 0), (False, 1), (True, 1), (False, 2)):
        with pytest.raises(Flagged):
            call(transient)
        assert consecutive("by-instance") == expected, transient


class Disguised(Exception):
    """Claims to be a KeyError through ``__class__`` (as proxies and mocks do)."""

    @property
    def __class__(self):
        return KeyError if self.args and self.args[0] == "as-key-error" else Disguised


def test_an_exception_with_its_own_class_attribute_is_judged_every_time():
    BreakerPolicyFactory(name="disguised", failure_threshold=100)
    call = raising("disguised", Disguised, ignore=(KeyError,))
    for arg, expected in (("as-key-error", 0), ("plain", 1), ("as-key-error", 1), ("plain", 2)):
        with pytest.raises(Disguised):
            call(arg)
        assert consecutive("disguised") == expected, arg
