"""The model registry: trained classifiers stored in the database's ``models`` table.

Several daemon workers share one PostgreSQL database, so the database (not a
directory of files) is where models live: each row holds the model file
(:mod:`classifiers.persistence` bytes) in ``blob``, its SHA-256, the
scikit-learn version, the classes, the held-out metrics, the training-set size
and time, the target (``queue`` or ``priority``) and an ``active`` flag.

At most one model per target is active; activating one deactivates the others
in the same transaction (on PostgreSQL under an advisory lock, so two workers
activating at once cannot both win). Readers take the newest active row.

Loading refuses (raises :class:`~triage.errors.ModelError`) a blob whose SHA-256
no longer matches, one written by another scikit-learn version, or one with
untrusted types. Callers that route mail catch it and fall back to rules and the
fallback queue; ``triage status`` shows the reason.

Every function takes an open SQLAlchemy session (one transaction, from
``Database.session()``) and neither commits nor rolls back.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import func, select, text, update
from sqlalchemy.orm import Session

from triage.clock import utcnow
from triage.errors import ModelError, NotFoundError
from triage.store.models import Model

if TYPE_CHECKING:  # scikit-learn and skops load only when a model is saved or loaded
    from classifiers.model import TrainedModel

__all__ = [
    "ModelInfo",
    "activate_model",
    "active_model_info",
    "list_models",
    "load_active_model",
    "load_model",
    "rollback_model",
    "save_model",
]

_ACTIVATION_LOCK = 0x7472_6961_6765_6D6F  # "triagemo": PostgreSQL advisory lock key


@dataclass(frozen=True, slots=True)
class ModelInfo:
    """A stored model without its bytes.

    Attributes:
        version: unique model name.
        target: ``queue`` or ``priority``.
        active: whether routing uses it.
        trained_at: aware, UTC.
        classes: labels it predicts.
        metrics: held-out scores (``accuracy``, ``macro_f1``, ``per_class`` ...).
        size: bytes of the model file.
    """

    id: int
    version: str
    target: str
    active: bool
    sklearn_version: str
    trained_at: datetime
    n_train: int
    classes: tuple[str, ...]
    metrics: dict[str, Any]
    sha256: str
    size: int


_INFO_COLUMNS = (
    Model.id,
    Model.version,
    Model.target,
    Model.active,
    Model.sklearn_version,
    Model.trained_at,
    Model.n_train,
    Model.classes,
    Model.metrics,
    Model.sha256,
    func.length(Model.blob),
)


def _info(row: Any) -> ModelInfo:
    return ModelInfo(
        id=row[0],
        version=row[1],
        target=row[2],
        active=bool(row[3]),
        sklearn_version=row[4],
        trained_at=row[5],
        n_train=row[6],
        classes=tuple(row[7] or ()),
        metrics=dict(row[8] or {}),
        sha256=row[9],
        size=int(row[10] or 0),
    )


MODEL_TARGETS = ("queue", "priority")
"""``classifiers.model.TARGETS``, spelt out so that reading model rows (``triage status``,
the daemon's model check) needs no scikit-learn (a test keeps the two equal)."""


def _check_target(target: str) -> None:
    if target not in MODEL_TARGETS:
        raise ValueError(f"unknown model target {target!r}; expected one of {MODEL_TARGETS}")


def save_model(session: Session, model: TrainedModel, *, activate: bool) -> ModelInfo:
    """Store ``model``; make it the active one of its target when ``activate``.

    Returns the stored row's :class:`ModelInfo`.
    """
    from classifiers import persistence  # noqa: PLC0415 - skops, only when saving

    blob = persistence.dumps(model)
    row = Model(
        version=model.version,
        target=model.target,
        active=False,
        sklearn_version=model.sklearn_version,
        trained_at=model.trained_at,
        n_train=model.n_train,
        classes=list(model.classes),
        metrics=model.metrics,
        blob=blob,
        sha256=persistence.sha256(blob),
    )
    session.add(row)
    session.flush()
    if activate:
        return activate_model(session, model.version)
    return _get_info(session, model.version)


def _get_info(session: Session, version: str) -> ModelInfo:
    row = session.execute(select(*_INFO_COLUMNS).where(Model.version == version)).first()
    if row is None:
        raise NotFoundError(f"no model {version!r} (see `triage status` for the active one)")
    return _info(row)


def activate_model(session: Session, version: str, *, at: datetime | None = None) -> ModelInfo:
    """Make model ``version`` the active one of its target; deactivate the others.

    The activation time (``at``, default now) is added to the model's
    ``metrics["activated_at"]`` (ISO 8601 UTC), so :func:`rollback_model` knows
    which model was active before.

    Raises:
        NotFoundError: no such model.
    """
    bind = session.get_bind()
    if bind.dialect.name == "postgresql":
        session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _ACTIVATION_LOCK})
    info = _get_info(session, version)
    session.execute(
        update(Model)
        .where(Model.target == info.target, Model.version != version, Model.active.is_(True))
        .values(active=False)
    )
    moment = (at or utcnow()).astimezone(UTC).isoformat()
    metrics = dict(info.metrics)
    metrics["activated_at"] = [*list(metrics.get("activated_at") or []), moment]
    session.execute(
        update(Model).where(Model.version == version).values(active=True, metrics=metrics)
    )
    session.flush()
    return _get_info(session, version)


def _last(info: ModelInfo, key: str) -> str:
    return max((str(t) for t in info.metrics.get(key) or []), default="")


def rollback_model(
    session: Session, target: str = "queue", *, at: datetime | None = None
) -> ModelInfo:
    """Activate the model of ``target`` that was active before the current one.

    That is the most recently activated model other than the current one, skipping
    models rolled back from since their last activation: so rolling back twice goes
    two steps back, not back and forth. The current model's ``metrics["rolled_back_at"]``
    records the rollback.

    Raises:
        NotFoundError: no earlier model of ``target`` to go back to.
    """
    _check_target(target)
    models = list_models(session, target)
    active = next((m for m in models if m.active), None)
    earlier = [
        m
        for m in models
        if (active is None or m.version != active.version)
        and _last(m, "activated_at") > _last(m, "rolled_back_at")
    ]
    if not earlier:
        raise NotFoundError(
            f"no earlier active {target} model to roll back to (`triage model list`)"
        )
    moment = (at or utcnow()).astimezone(UTC).isoformat()
    if active is not None:
        metrics = dict(active.metrics)
        metrics["rolled_back_at"] = [*list(metrics.get("rolled_back_at") or []), moment]
        session.execute(update(Model).where(Model.id == active.id).values(metrics=metrics))
    previous = max(earlier, key=lambda m: _last(m, "activated_at"))
    return activate_model(session, previous.version, at=at)


def list_models(session: Session, target: str | None = None) -> list[ModelInfo]:
    """Stored models, newest first (all targets unless ``target`` is given)."""
    query = select(*_INFO_COLUMNS).order_by(Model.id.desc())
    if target is not None:
        query = query.where(Model.target == target)
    return [_info(r) for r in session.execute(query)]


def active_model_info(session: Session, target: str = "queue") -> ModelInfo | None:
    """The active model of ``target`` without loading it (cheap: poll it to notice a new one)."""
    _check_target(target)
    row = session.execute(
        select(*_INFO_COLUMNS)
        .where(Model.target == target, Model.active.is_(True))
        .order_by(Model.id.desc())
        .limit(1)
    ).first()
    return _info(row) if row is not None else None


def load_model(session: Session, version: str) -> TrainedModel:
    """Load model ``version``, verifying its SHA-256, scikit-learn version and types.

    Raises:
        NotFoundError: no such model.
        ModelError: refused (tampered, other scikit-learn version, untrusted types).
    """
    row = session.execute(
        select(Model.blob, Model.sha256, Model.sklearn_version).where(Model.version == version)
    ).first()
    if row is None:
        raise NotFoundError(f"no model {version!r}")
    blob, digest, _ = row
    try:
        from classifiers import persistence  # noqa: PLC0415 - skops, only when loading

        model = persistence.loads(bytes(blob), expected_sha256=digest)
    except ModelError as exc:
        raise ModelError(f"model {version}: {exc}") from None
    if model.version != version:
        raise ModelError(f"model {version}: the stored file is model {model.version}")
    return model


def load_active_model(session: Session, target: str = "queue") -> TrainedModel | None:
    """The active model of ``target``, or None when no model is active.

    Raises:
        ModelError: the active model is refused: its bytes no longer match the
            recorded SHA-256 (tampered or corrupted), it was trained with another
            scikit-learn version, or it holds untrusted types. The message says
            which and what to do (retrain with ``triage train``). Routing catches
            it and uses rules and the fallback queue instead.
    """
    info = active_model_info(session, target)
    if info is None:
        return None
    return load_model(session, info.version)
