"""Protected HTTP clients: a requests adapter (``.requests``) and httpx transports (``.httpx``)."""
