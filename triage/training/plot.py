"""The confusion matrix as a PNG picture (matplotlib, Agg backend: no display needed)."""

from __future__ import annotations

from pathlib import Path

import matplotlib as mpl

mpl.use("Agg")

import matplotlib.pyplot as plt
import numpy as np

from classifiers.evaluation import Scores
from triage.errors import UserError

__all__ = ["write_confusion_png"]


def write_confusion_png(scores: Scores, path: Path, *, title: str = "") -> None:
    """Draw ``scores.confusion`` (rows true, columns predicted, counts in the cells) to ``path``.

    Rows are normalized for the colour (recall per class), so small classes show too.

    Raises:
        UserError: the file cannot be written.
    """
    matrix = np.asarray(scores.confusion, dtype=float)
    totals = matrix.sum(axis=1, keepdims=True)
    shares = np.divide(matrix, totals, out=np.zeros_like(matrix), where=totals > 0)
    n = len(scores.labels)
    size = max(4.0, 1.0 + 0.45 * n)
    fig, ax = plt.subplots(figsize=(size + 1.5, size))
    try:
        image = ax.imshow(shares, cmap="Blues", vmin=0.0, vmax=1.0)
        fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04, label="share of the true class")
        ax.set_xticks(range(n), labels=scores.labels, rotation=60, ha="right", fontsize=8)
        ax.set_yticks(range(n), labels=scores.labels, fontsize=8)
        ax.set_xlabel("predicted")
        ax.set_ylabel("true")
        heading = f"accuracy {scores.accuracy:.3f}, macro-F1 {scores.macro_f1:.3f}, n={scores.n}"
        ax.set_title(f"{title}\n{heading}" if title else heading, fontsize=9)
        if n <= 30:
            for i in range(n):
                for j in range(n):
                    count = int(matrix[i, j])
                    if count:
                        colour = "white" if shares[i, j] > 0.5 else "black"
                        ax.text(
                            j, i, str(count), ha="center", va="center", fontsize=7, color=colour
                        )
        fig.tight_layout()
        try:
            fig.savefig(path, format="png", dpi=110)
        except OSError as exc:
            raise UserError(f"{path}: cannot write the plot ({exc.strerror})") from None
    finally:
        plt.close(fig)
