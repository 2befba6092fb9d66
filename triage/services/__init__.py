"""Services: the runners that move messages between the adapters (intake, dispatch, SLA watch)."""
