"""The code of each ``manage.py resilience`` subcommand, one module each (``control``: reset,
open and release); ``management/commands/resilience.py`` parses the command line and calls the
``run`` of the one named."""
