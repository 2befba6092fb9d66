"""Labeled training data in (CSV, folders of raw mail, the database) and plots out.

The I/O side of the classifier: :mod:`classifiers` learns from the
:class:`~triage.training.sources.Dataset` values read here.
"""

from triage.training.sources import (
    Dataset,
    combine,
    load_csv,
    load_database,
    load_path,
    load_tree,
)

__all__ = ["Dataset", "combine", "load_csv", "load_database", "load_path", "load_tree"]
