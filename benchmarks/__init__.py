"""Benchmarks of django-resilience next to pybreaker, circuitbreaker, purgatory and aiobreaker."""
