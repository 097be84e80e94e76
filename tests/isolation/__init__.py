"""Isolation: a hanging upstream must not take the rest of the site down (issue 14)."""
