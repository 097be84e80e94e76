"""A small Django site whose view makes protected calls on demand, for the metrics tests
(served by ``gunicorn tests.support.hangsite.wsgi``, whose module is a plain WSGI entry)."""
