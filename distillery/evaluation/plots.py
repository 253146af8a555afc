"""PNG figures for reviewers, drawn with matplotlib from the files evaluate and training wrote."""
from __future__ import annotations

import functools
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd

from ..data.layout import COLOUR_CHANNELS
from .wording import counted

COLORS = {"teacher": "tab:gray", "kd": "tab:blue", "hard": "tab:orange"}


def _color(name: str) -> str:
    """The colour of a model, also for one run of it (``kd_seed0``)."""
    return COLORS.get(name.split("_seed")[0], "tab:green")


def pyplot():
    """matplotlib.pyplot on the Agg backend (files only, no display)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig, path: Path) -> None:
    """``fig`` written atomically to ``path`` as PNG, then closed."""
    from ..io import atomic_path

    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110, bbox_inches="tight")
    pyplot().close(fig)


def draw_figures(jobs: list[tuple[Callable, tuple]], processes: int | None = None) -> None:
    """Call every ``(draw, args)`` of ``jobs``, independent figures each written by its ``draw``, in up to
    ``processes`` forked processes (None: one per available core): the same files, drawn side by side instead
    of one after the other. A failure in any of them is raised here."""
    from ..forking import cores, run_side_by_side

    run_side_by_side([functools.partial(draw, *args) for draw, args in jobs], processes or cores())


def read_predictions(path: Path, label_names: list[str]) -> pd.DataFrame:
    """evaluate's ``predictions.csv`` with its classes as indices of ``label_names`` again (the file names them; read
    as text, so a class named ``NA`` or ``1`` stays itself)."""
    predictions = class_indices_of(pd.read_csv(path, dtype=str, keep_default_na=False), label_names)
    predictions["id"] = predictions["id"].astype(np.int64)
    return predictions


def class_indices_of(predictions: pd.DataFrame, label_names: list[str]) -> pd.DataFrame:
    """Predictions by class name (evaluate's ``predictions.csv``: ``id``, ``label`` and a column per model) with
    their classes as indices of ``label_names`` again."""
    index = {name: i for i, name in enumerate(label_names)}
    classes = [column for column in predictions.columns if column != "id"]
    return predictions.assign(**{column: predictions[column].map(index) for column in classes})


def student_columns(predictions: pd.DataFrame, kind: str) -> list[str]:
    return [c for c in predictions.columns if c.startswith(f"{kind}_seed")]


def confusion_matrices(predictions: pd.DataFrame, label_names: list[str], path: Path) -> None:
    """Row-normalised confusion matrices of the teacher and both students (students pooled over seeds)."""
    plt = pyplot()
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
        seeds = "" if kind == "teacher" else f" ({counted(len(columns), 'seed')} pooled)"
        ax.set_title(f"{kind}: accuracy {(pred == truth).mean():.3f}{seeds}")
    save_figure(fig, path)


def reliability_diagrams(rows: dict[str, dict[str, pd.DataFrame]], path: Path) -> None:
    """Accuracy vs confidence per bin, one row of panels per ``rows`` entry (e.g. before / after temperature
    scaling) and one panel per model, with the diagonal of perfect calibration."""
    plt = pyplot()
    ncols = max(len(tables) for tables in rows.values())
    fig, axes = plt.subplots(len(rows), ncols, figsize=(5 * ncols, 4.6 * len(rows)), squeeze=False)
    for ax_row, (row_title, tables) in zip(axes, rows.items()):
        for ax, (name, t) in zip(ax_row, tables.items()):
            filled = t["count"] > 0
            width = (t["upper"] - t["lower"]).iloc[0]
            ax.bar(t["lower"][filled], t["accuracy"][filled], width=width, align="edge",
                   color=_color(name), alpha=0.7, edgecolor="black", label="accuracy")
            gap = np.abs(t["accuracy"][filled] - t["confidence"][filled])
            ece = float((t["count"][filled] / t["count"].sum() * gap).sum())
            ax.plot([0, 1], [0, 1], "k--", lw=1, label="perfect calibration")
            ax.plot(t["confidence"][filled], t["accuracy"][filled], "o", color="black", ms=3)
            ax.set(xlim=(0, 1), ylim=(0, 1), xlabel="confidence", ylabel="accuracy",
                   title=f"{name}, {row_title}: ECE {ece:.4f}")
            ax.legend(loc="upper left", fontsize=8)
    save_figure(fig, path)


def roc_curves(logits: dict[str, np.ndarray], labels: np.ndarray, label_names: list[str], path: Path) -> None:
    """One-vs-rest ROC curve of every class, one panel per model (the panel title names the run)."""
    from .metrics import probabilities, roc_auc_per_class, roc_points

    plt = pyplot()
    fig, axes = plt.subplots(1, len(logits), figsize=(5 * len(logits), 4.8), squeeze=False)
    colors = plt.get_cmap("tab10" if len(label_names) <= 10 else "viridis", len(label_names))
    for ax, (name, z) in zip(axes[0], logits.items()):
        probs, auc = probabilities(z), roc_auc_per_class(z, labels)
        for k, label in enumerate(label_names):
            if np.isfinite(auc[k]):
                fpr, tpr = roc_points(labels == k, probs[:, k])
                ax.plot(fpr, tpr, color=colors(k), lw=1, label=f"{label}: {auc[k]:.4f}")
        ax.plot([0, 1], [0, 1], "k:", lw=1)
        ax.set(xlabel="false positive rate", ylabel="true positive rate",
               title=f"{name}: macro AUC {np.nanmean(auc):.4f}")
        if len(label_names) <= 12:
            ax.legend(title="class: AUC", fontsize=7, loc="lower right")
    save_figure(fig, path)


def teacher_student_scatter(teacher: np.ndarray, students: dict[str, np.ndarray], labels: np.ndarray,
                            path: Path, max_points: int = 20000) -> None:
    """Student vs teacher outputs for the same test rows: every logit (coloured by class) for up to 20
    classes, else the probability each model gives the true class."""
    from .metrics import probabilities

    plt = pyplot()
    fig, axes = plt.subplots(1, len(students), figsize=(5.2 * len(students), 5), squeeze=False)
    n_classes = teacher.shape[1]
    m = max(1, max_points // n_classes)  # the first rows in id order: deterministic
    teacher, labels, rows = teacher[:m], labels[:m], np.arange(min(m, len(labels)))
    for ax, (name, z) in zip(axes[0], students.items()):
        z = z[:m]
        if n_classes <= 20:
            x, y = teacher.ravel(), z.ravel()
            colour = np.tile(np.arange(n_classes), len(rows))
            ax.scatter(x, y, c=colour, cmap="tab10" if n_classes <= 10 else "tab20", s=4, alpha=0.5)
            ax.set(xlabel="teacher logit", ylabel=f"{name} logit")
        else:
            x = probabilities(teacher)[rows, labels]
            y = probabilities(z)[rows, labels]
            ax.scatter(x, y, s=4, alpha=0.5, color=_color(name))
            ax.plot([0, 1], [0, 1], "k:", lw=1)
            ax.set(xlabel="teacher p(true class)", ylabel=f"{name} p(true class)")
        r = np.corrcoef(x, y)[0, 1]
        ax.set_title(f"{name} vs teacher: Pearson r = {r:.3f}")
    save_figure(fig, path)


def confidence_histograms(runs: dict[str, list[np.ndarray]], labels: np.ndarray, path: Path) -> None:
    """Top-label confidence of right and of wrong test predictions, one panel per model (its runs pooled)."""
    from matplotlib import ticker

    from .metrics import probabilities

    plt = pyplot()
    fig, axes = plt.subplots(1, len(runs), figsize=(5.5 * len(runs), 4), squeeze=False)
    edges = np.linspace(0, 1, 26)
    for ax, (name, logits) in zip(axes[0], runs.items()):
        probs = probabilities(np.concatenate(logits))
        confidence = probs.max(axis=1)
        right = probs.argmax(axis=1) == np.tile(labels, len(logits))
        ax.hist(confidence[right], bins=edges, color=_color(name), alpha=0.6,
                label=f"right ({right.sum()})")
        ax.hist(confidence[~right], bins=edges, histtype="step", color="tab:red", lw=2,
                label=f"wrong ({(~right).sum()})")
        ax.set_yscale("log")
        ax.yaxis.set_major_formatter(ticker.StrMethodFormatter("{x:g}"))
        ax.yaxis.set_minor_formatter(ticker.NullFormatter())
        pooled = f", {len(logits)} seeds pooled" if len(logits) > 1 else ""
        ax.set(xlabel="top-label confidence", ylabel="test predictions (log scale)",
               title=f"{name}{pooled}: mean confidence {confidence.mean():.3f}")
        ax.legend(fontsize=8, loc="upper left")
    save_figure(fig, path)


def as_image(inputs: np.ndarray, input_shape: list[int]) -> np.ndarray | None:
    """Inputs as (N, H, W), (N, H, W, 3) or (N, H, W, 4) images (what ``imshow`` draws) if ``input_shape`` is an
    image in the pipeline's layout, (H, W) or channels first (C, H, W) with 1, 3 or 4 channels (prepare moved every
    source's there: ``data.layout``), else None."""
    shape = list(input_shape)
    if len(shape) == 2 and min(shape) > 1:
        return inputs.reshape(len(inputs), *shape)
    if len(shape) == 3 and shape[0] in COLOUR_CHANNELS and min(shape[1:]) > 1:
        images = inputs.reshape(len(inputs), *shape).transpose(0, 2, 3, 1)
        return images[..., 0] if shape[0] == 1 else images
    return None


def prediction_grid(images: np.ndarray, labels: np.ndarray, predictions: dict[str, np.ndarray],
                    label_names: list[str], path: Path, n: int = 24, note: str = "") -> None:
    """``n`` test images with each model's prediction: up to two thirds are rows some model gets wrong
    (framed red, wrong predictions in red), the rest rows all get right, each group in id order."""
    plt = pyplot()
    wrong = np.any([p != labels for p in predictions.values()], axis=0)
    mistakes = np.flatnonzero(wrong)[: 2 * n // 3]
    chosen = np.concatenate([mistakes, np.flatnonzero(~wrong)])[:n]
    cols = min(8, len(chosen))
    nrows = int(np.ceil(len(chosen) / cols))
    fig, axes = plt.subplots(nrows, cols, figsize=(1.9 * cols, 2.5 * nrows), squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    for ax, i in zip(axes.ravel(), chosen):
        ax.imshow(images[i], cmap="gray_r" if images[i].ndim == 2 else None)
        ax.set_title(f"true {label_names[labels[i]]}", fontsize=8)
        lines = [(f"{name} {label_names[p[i]]}", "tab:red" if p[i] != labels[i] else "black")
                 for name, p in predictions.items()]
        for j, (text, colour) in enumerate(lines):
            ax.text(0.5, -0.08 - 0.13 * j, text, transform=ax.transAxes, ha="center", va="top",
                    fontsize=7, color=colour)
        if wrong[i]:
            ax.axis("on")
            ax.set_xticks([])
            ax.set_yticks([])
            for spine in ax.spines.values():
                spine.set(color="tab:red", linewidth=2)
    fig.suptitle(f"test examples: some model wrong (red frame), then all right{note}", fontsize=10)
    fig.subplots_adjust(hspace=0.9)
    save_figure(fig, path)


def read_curves(live_dir: Path) -> dict[str, pd.DataFrame]:
    """DVCLive's per-metric TSV files under ``live_dir/plots/metrics`` keyed by name (``loss``, ``eval/accuracy``)."""
    root = Path(live_dir) / "plots" / "metrics"
    return {str(f.relative_to(root).with_suffix("")): pd.read_csv(f, sep="\t") for f in sorted(root.rglob("*.tsv"))}


def training_curves(live_roots: dict[str, Path], terms: tuple[str, ...], path: Path, method: str = "kd",
                    validation: tuple[str, str] = ("eval/accuracy", "validation accuracy")) -> None:
    """Loss, each term the method logs (``Method.terms``) and a validation metric (``validation``: the curve and
    its title) per step: one thin line per seed, the mean bold."""
    plt = pyplot()
    curves = [("loss", "training loss"), *((t, f"{t} term") for t in terms), validation]
    fig, axes = plt.subplots(1, len(curves), figsize=(5 * len(curves), 4))
    for kind, root in live_roots.items():
        runs = [read_curves(d) for d in sorted(Path(root).glob("seed_*"))]
        name = f"distilled: {method}" if kind == "kd" else kind
        for ax, (metric, title) in zip(axes, curves):
            frames = [r[metric] for r in runs if metric in r]
            if not frames:
                continue
            column = metric.split("/")[-1]
            for f in frames:
                ax.plot(f["step"], f[column], color=COLORS[kind], alpha=0.25, lw=0.8)
            mean = pd.concat(frames).groupby("step")[column].mean()
            ax.plot(mean.index, mean.values, color=COLORS[kind], lw=2, label=f"{name} (mean of {len(frames)})")
            ax.set(title=title, xlabel="step")
            ax.legend(fontsize=8)
    save_figure(fig, path)


def perplexities(metrics: dict, path: Path) -> None:
    """Validation and test perplexity of the teacher and of each student seed (dots) with the seeds' mean (bar)."""
    plt = pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for ax, (prefix, title) in zip(axes, (("validation_", "validation"), ("", "test"))):
        for x, name in enumerate(("teacher", "kd", "hard")):
            block = metrics[name]
            ax.bar(x, block[f"{prefix}perplexity"], color=COLORS[name], alpha=0.6)
            ax.text(x, block[f"{prefix}perplexity"], f"{block[prefix + 'perplexity']:.2f}", ha="center",
                    va="bottom", fontsize=8)
            for value in block.get(f"{prefix}perplexity_seeds", []):
                ax.plot(x, value, "k.", ms=4)
        ax.set(xticks=range(3), xticklabels=["teacher", "distilled", "hard"], ylabel="perplexity (lower is better)",
               title=f"{title}: token-weighted perplexity")
    save_figure(fig, path)
