"""Services: the long-running jobs that tie adapters and the pure core together."""
