"""Rule engine: declarative routing rules, evaluated without I/O."""
