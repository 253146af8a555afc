"""``reports/headline.json``: the figures ``dvc exp show`` opens with, each copied from ``reports/metrics.json``;
``source_of`` names the figure a headline key copies (its spread over seeds is beside it there)."""
from __future__ import annotations

from ..schema import flatten, unflatten

MODELS = ("kd", "hard", "teacher")


def _per_model(measure: str) -> list[str]:
    return [f"{measure}.{model}" for model in MODELS]


def headline_keys(metrics: dict) -> list[str]:
    """The headline's dotted keys, in the order written: a classifier's validation accuracy (what a setting is
    chosen by, so ``dvc exp show`` leads with it), then its test accuracy, distilled − hard accuracy and ECE; a
    language model's perplexities (test, then validation), distilled − hard NLL and gap closure, and its answers'
    scores where there are prompts."""
    if "perplexity" not in metrics["teacher"]:
        return [*_per_model("validation_accuracy"), *_per_model("accuracy"), "kd_minus_hard", *_per_model("ece")]
    keys = [*_per_model("perplexity"), *_per_model("validation_perplexity"), "kd_minus_hard_nll", "gap_closure"]
    for measure in ("rouge_l", "exact_match"):
        if measure in metrics["teacher"]:
            keys += [*_per_model(measure), f"kd_minus_hard_{measure}"]
    return keys


def source_of(key: str) -> str:
    """The metrics.json key a headline key copies: ``accuracy.kd`` -> ``kd.accuracy``, ``kd_minus_hard`` ->
    ``comparison.kd_minus_hard_accuracy``, another comparison ``gap_closure`` -> ``comparison.gap_closure``."""
    measure, _, model = key.partition(".")
    if model:
        return f"{model}.{measure}"
    return "comparison.kd_minus_hard_accuracy" if key == "kd_minus_hard" else f"comparison.{key}"


def headline(metrics: dict) -> dict:
    """The headline of ``metrics`` (the students' figures are their means over seeds)."""
    flat = flatten(metrics)
    return unflatten({key: flat[source_of(key)] for key in headline_keys(metrics)})
