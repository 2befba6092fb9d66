"""The ``triage`` command line."""
