"""Django signals sent once per persisted circuit event (kwargs: ``event``)."""

from django.dispatch import Signal

circuit_opened = Signal()
circuit_half_opened = Signal()
circuit_closed = Signal()
