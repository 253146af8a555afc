"""PNG figures for reviewers, drawn with matplotlib from the files evaluate and training wrote."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

COLORS = {"teacher": "tab:gray", "kd": "tab:blue", "hard": "tab:orange"}
CURVES = [("loss", "training loss"), ("ce", "CE term"), ("kd", "KD term (T²·KL)"),
          ("eval/accuracy", "validation accuracy")]


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: Path) -> None:
    from .io import atomic_path

    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110, bbox_inches="tight")
    _pyplot().close(fig)


def student_columns(predictions: pd.DataFrame, kind: str) -> list[str]:
    return [c for c in predictions.columns if c.startswith(f"{kind}_seed")]


def confusion_matrices(predictions: pd.DataFrame, label_names: list[str], path: Path) -> None:
    """Row-normalised confusion matrices of the teacher and both students (students pooled over seeds)."""
    plt = _pyplot()
    n = len(label_names)
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.8))
    for ax, kind in zip(axes, ("teacher", "kd", "hard")):
        columns = [kind] if kind == "teacher" else student_columns(predictions, kind)
        truth = np.tile(predictions["label"].to_numpy(), len(columns))
        pred = np.concatenate([predictions[c].to_numpy() for c in columns])
        counts = np.bincount(truth * n + pred, minlength=n * n).reshape(n, n)
        cm = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1)
        ax.imshow(cm, cmap="Blues", vmin=0, vmax=1)
        for i in range(n):
            for j in range(n):
                if cm[i, j] >= 0.005:
                    ax.text(j, i, f"{cm[i, j]:.2f}", ha="center", va="center", fontsize=7,
                            color="white" if cm[i, j] > 0.5 else "black")
        ax.set_xticks(range(n), label_names, rotation=90 if n > 12 else 0)
        ax.set_yticks(range(n), label_names)
        ax.set_xlabel("predicted")
        ax.set_ylabel("true")
        seeds = "" if kind == "teacher" else f" ({len(columns)} seeds pooled)"
        ax.set_title(f"{kind}: accuracy {(pred == truth).mean():.3f}{seeds}")
    _save(fig, path)


def reliability_diagram(tables: dict[str, pd.DataFrame], path: Path) -> None:
    """Accuracy vs confidence per bin for each model, with the diagonal of perfect calibration."""
    plt = _pyplot()
    fig, axes = plt.subplots(1, len(tables), figsize=(5 * len(tables), 4.6), squeeze=False)
    for ax, (name, t) in zip(axes[0], tables.items()):
        filled = t["count"] > 0
        width = (t["upper"] - t["lower"]).iloc[0]
        ax.bar(t["lower"][filled], t["accuracy"][filled], width=width, align="edge",
               color=COLORS.get(name, "tab:green"), alpha=0.7, edgecolor="black", label="accuracy")
        gap = np.abs(t["accuracy"][filled] - t["confidence"][filled])
        ece = float((t["count"][filled] / t["count"].sum() * gap).sum())
        ax.plot([0, 1], [0, 1], "k--", lw=1, label="perfect calibration")
        ax.plot(t["confidence"][filled], t["accuracy"][filled], "o", color="black", ms=3)
        ax.set(xlim=(0, 1), ylim=(0, 1), xlabel="confidence", ylabel="accuracy", title=f"{name}: ECE {ece:.4f}")
        ax.legend(loc="upper left", fontsize=8)
    _save(fig, path)


def read_curves(live_dir: Path) -> dict[str, pd.DataFrame]:
    """DVCLive's per-metric TSV files under ``live_dir/plots/metrics`` keyed by name (``loss``, ``eval/accuracy``)."""
    root = Path(live_dir) / "plots" / "metrics"
    return {str(f.relative_to(root).with_suffix("")): pd.read_csv(f, sep="\t") for f in sorted(root.rglob("*.tsv"))}


def training_curves(live_roots: dict[str, Path], path: Path) -> None:
    """Loss, CE term, KD term and validation accuracy per step: one thin line per seed, the mean bold."""
    plt = _pyplot()
    fig, axes = plt.subplots(1, len(CURVES), figsize=(5 * len(CURVES), 4))
    for kind, root in live_roots.items():
        runs = [read_curves(d) for d in sorted(Path(root).glob("seed_*"))]
        for ax, (metric, title) in zip(axes, CURVES):
            frames = [r[metric] for r in runs if metric in r]
            if not frames:
                continue
            column = metric.split("/")[-1]
            for f in frames:
                ax.plot(f["step"], f[column], color=COLORS[kind], alpha=0.25, lw=0.8)
            mean = pd.concat(frames).groupby("step")[column].mean()
            ax.plot(mean.index, mean.values, color=COLORS[kind], lw=2, label=f"{kind} (mean of {len(frames)})")
            ax.set(title=title, xlabel="step")
            ax.legend(fontsize=8)
    _save(fig, path)
