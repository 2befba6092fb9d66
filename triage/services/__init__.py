"""Services: the long-running jobs of triage (intake, dispatch, SLA watch)."""
