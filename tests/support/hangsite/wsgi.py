"""``gunicorn tests.support.hangsite.wsgi`` (DJANGO_SETTINGS_MODULE set by the caller)."""

from django.core.wsgi import get_wsgi_application

application = get_wsgi_application()
