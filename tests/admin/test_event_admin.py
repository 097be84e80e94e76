"""The event log: read-only, filterable, linked to policies, safe with hostile text."""

from datetime import timedelta

import pytest
from django.utils import timezone

from tests.factories import BreakerPolicyFactory, CircuitEventFactory

pytestmark = pytest.mark.django_db

EVENTS = "/admin/resilience/circuitevent/"
HOSTILE = "<script>alert('pwned')</script>\r\nsecond line\u2028third"
MEGABYTE = "<b>x</b>" * (1024 * 1024 // 8)


@pytest.fixture
def hostile_event():
    policy = BreakerPolicyFactory(name="payments-api")
    return CircuitEventFactory(policy=policy, error=HOSTILE + MEGABYTE, reason=HOSTILE)


def test_list_escapes_and_truncates(superuser, client_for, hostile_event):
    response = client_for(superuser).get(EVENTS)
    html = response.content.decode()
    assert "<script>alert" not in html and "<b>x</b>" not in html
    assert "&lt;script&gt;alert(&#x27;pwned&#x27;)&lt;/script&gt; second line third" in html
    assert len(response.content) < 200_000  # the megabyte stays in the database
    assert f'href="/admin/resilience/breakerpolicy/{hostile_event.policy_id}/change/"' in html


def test_detail_escapes_and_truncates(superuser, client_for, hostile_event):
    response = client_for(superuser).get(f"{EVENTS}{hostile_event.pk}/change/")
    assert response.status_code == 200
    html = response.content.decode()
    assert "<script>alert" not in html and "<b>x</b>" not in html
    assert "&lt;script&gt;alert(&#x27;pwned&#x27;)&lt;/script&gt;<br>" in html  # lines kept
    assert "more characters not shown" in html
    assert len(response.content) < 200_000
    assert 'name="_save"' not in html  # read-only


def test_change_page_of_the_policy_escapes_event_text(superuser, client_for, hostile_event):
    url = f"/admin/resilience/breakerpolicy/{hostile_event.policy_id}/change/"
    response = client_for(superuser).get(url)
    html = response.content.decode()
    assert "<script>alert" not in html and "<b>x</b>" not in html
    assert len(response.content) < 200_000


def test_read_only(superuser, client_for, hostile_event):
    client = client_for(superuser)
    assert client.get(f"{EVENTS}add/").status_code == 403
    assert client.post(f"{EVENTS}{hostile_event.pk}/change/", {"reason": "x"}).status_code == 403
    assert client.post(f"{EVENTS}{hostile_event.pk}/delete/", {"post": "yes"}).status_code == 403
    assert "delete_selected" not in client.get(EVENTS).content.decode()


def test_filters_by_circuit_kind_and_date(superuser, client_for):
    pay = BreakerPolicyFactory(name="payments-api")
    search = BreakerPolicyFactory(name="search")
    old = CircuitEventFactory(policy=pay, kind="opened")
    old.created_at = timezone.now() - timedelta(days=40)
    type(old).objects.filter(pk=old.pk).update(created_at=old.created_at)
    CircuitEventFactory(policy=pay, kind="closed")
    CircuitEventFactory(policy=search, kind="opened")
    orphan = CircuitEventFactory(policy=None, circuit="gone-api", kind="reset")
    client = client_for(superuser)

    def listed(**params):
        response = client.get(EVENTS, params)
        assert response.status_code == 200
        return sorted((e.circuit, e.kind) for e in response.context["cl"].result_list)

    pay_events = [("payments-api", "closed"), ("payments-api", "opened")]
    assert listed(circuit="payments-api") == pay_events
    assert listed(kind="opened") == [("payments-api", "opened"), ("search", "opened")]
    assert listed(circuit="gone-api") == [("gone-api", "reset")]
    since = str(timezone.now() - timedelta(days=7))  # what the "Past 7 days" link sends
    assert len(listed(created_at__gte=since)) == 3
    year = old.created_at.year
    assert ("payments-api", "opened") in listed(created_at__year=year)  # date hierarchy
    html = client.get(EVENTS).content.decode()
    assert "?circuit=search" in html  # circuits with recent events are offered as filters
    assert orphan.circuit in html and "/breakerpolicy/None/" not in html


def test_event_log_query_count_is_constant(superuser, client_for, django_assert_max_num_queries):
    for i in range(50):
        CircuitEventFactory(policy=BreakerPolicyFactory(name=f"svc-{i}"))
    client = client_for(superuser)
    client.get(EVENTS)
    with django_assert_max_num_queries(10):
        assert client.get(EVENTS).status_code == 200


def test_the_event_page_shows_each_channels_delivery(client_for, hostile_event, django_user_model):
    from django.contrib.auth.models import Permission

    from resilience.models import AlertDelivery

    AlertDelivery.objects.create(event=hostile_event, channel="email", status="sent", attempts=1)
    AlertDelivery.objects.create(
        event=hostile_event, channel="webhook", status="pending", attempts=3, last_error=HOSTILE
    )
    viewer = django_user_model.objects.create_user("viewer", password="x", is_staff=True)
    viewer.user_permissions.add(Permission.objects.get(codename="view_circuitevent"))
    html = client_for(viewer).get(f"{EVENTS}{hostile_event.pk}/change/").content.decode()
    assert "alert deliveries (one per channel)" in html.lower()
    assert "webhook" in html and "Pending" in html and "Sent" in html
    assert "<script>alert" not in html  # the error text is escaped here too
    assert "&lt;script&gt;alert" in html
    assert 'name="deliveries-0-channel"' not in html  # read-only: no form fields
