"""The ``scheduler`` command line: run, check, next, status."""
