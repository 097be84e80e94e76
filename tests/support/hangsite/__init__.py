"""A small Django site with a view that calls one upstream and a page that does not (gunicorn)."""
