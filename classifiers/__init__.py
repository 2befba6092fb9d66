"""Classifiers: scikit-learn routing models, trained and evaluated without I/O.

Modules (each may import only the standard library, numpy, scipy, scikit-learn,
skops, :mod:`triage.domain` and :mod:`triage.errors`):

- :mod:`classifiers.features`: ``Example`` (subject, new body text, sender),
  ``example_from_message(InboundMessage)``, the feature columns.
- :mod:`classifiers.model`: ``train(examples, labels, *, trained_at, target)`` ->
  ``TrainedModel``; ``TrainedModel.predict(examples)`` -> ``list[Prediction]``
  (label, calibrated confidence, top classes, model version);
  ``choose(prediction, threshold, fallback)`` -> ``(queue, DecidedBy)``.
- :mod:`classifiers.persistence`: ``dumps(model)`` -> bytes (skops, no pickle) and
  ``loads(data, *, expected_sha256)``, raising ``ModelError`` for tampered files,
  another scikit-learn version or untrusted types.
- :mod:`classifiers.evaluation`: accuracy, macro-F1, per-class scores, confusion
  table, reliability (calibration) bins, stratified splits, ``at_least_as_good``.
- :mod:`classifiers.selection`: ``train_and_compare``: held-out scores and the
  rule that a new model replaces the active one only when at least as good.

Storage of models in the database is :mod:`triage.modelstore`; reading labeled
data is :mod:`triage.training`.
"""
