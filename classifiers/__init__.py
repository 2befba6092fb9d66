"""Classifiers: scikit-learn routing models, trained and evaluated without I/O."""
