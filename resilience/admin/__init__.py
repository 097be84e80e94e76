"""Django admin for circuits: live policy changelist and controls, and the read-only event log."""

from resilience.admin.event_admin import CircuitEventAdmin
from resilience.admin.policy_admin import BreakerPolicyAdmin
from resilience.admin.revisions import PolicyRevisionAdmin

__all__ = ["BreakerPolicyAdmin", "CircuitEventAdmin", "PolicyRevisionAdmin"]
