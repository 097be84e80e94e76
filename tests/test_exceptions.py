"""``CircuitOpenError`` and ``BulkheadFullError``: built from positional arguments alone."""

import pickle

from resilience import BulkheadFullError, CircuitOpenError


def test_the_attributes_come_from_the_arguments_with_their_defaults():
    exc = CircuitOpenError("payments-api", 2)
    assert (exc.circuit, exc.retry_after, exc.state) == ("payments-api", 2.0, "open")
    assert isinstance(exc.retry_after, float)
    assert CircuitOpenError("c").retry_after == 0.0
    assert CircuitOpenError("c", -3.5, "half_open").retry_after == 0.0  # never negative
    assert CircuitOpenError("c", float("nan")).retry_after == 0.0
    assert CircuitOpenError("c", 1.25, "half_open").state == "half_open"
    assert str(CircuitOpenError("c", 1.25)) == "circuit 'c' is open; retry after 1.2s"


def test_a_full_bulkhead_says_so():
    exc = BulkheadFullError("c", 0.5)
    assert isinstance(exc, CircuitOpenError)
    assert (exc.state, exc.retry_after) == ("bulkhead_full", 0.5)
    assert "maximum of concurrent calls" in str(exc)


def test_both_survive_pickling():
    for exc in (CircuitOpenError("c", 3, "half_open"), BulkheadFullError("b", 1)):
        copy = pickle.loads(pickle.dumps(exc))
        assert type(copy) is type(exc)
        assert (copy.circuit, copy.retry_after, copy.state) == (
            exc.circuit,
            exc.retry_after,
            exc.state,
        )
