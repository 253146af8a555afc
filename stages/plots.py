"""plots: PNG figures under reports/plots/ and reports/report.md (dvc plots show/diff use dvc.yaml's plots)."""
import json
from pathlib import Path

import pandas as pd

from distillery.evaluation import plots as P
from distillery.cli import run_stage
from distillery.data.prepared import load_prepared
from distillery.io import read_logits, write_text
from distillery.methods import get_method
from distillery.params import load_params
from distillery.evaluation.report import load_selections, render_report, setting_inputs

OUT = Path("reports/plots")
EVAL = Path("reports/eval")
EVAL_LOGITS = Path("data/eval_logits")
MODELS = ("teacher", "kd", "hard")


def main() -> None:
    params = load_params()
    prepared = load_prepared(Path("data/prepared"))
    if prepared.is_lm:
        return language_model_plots(params, prepared.meta)
    test, names = prepared.splits["test"], prepared.label_names
    predictions = P.read_predictions(EVAL / "predictions.csv", names)
    runs = {"teacher": ["teacher"]} | {k: P.student_columns(predictions, k) for k in ("kd", "hard")}
    logits = {name: [read_logits(EVAL_LOGITS / f"{c}.parquet", test.ids, prepared.num_labels) for c in cols]
              for name, cols in runs.items()}
    first = {name: logits[name][0] for name in MODELS}  # the teacher and each student's first seed
    first_names = {name: name if name == "teacher" else runs[name][0] for name in MODELS}
    reliability = {m: pd.read_csv(EVAL / f"reliability_{m}.csv") for m in MODELS}
    scaled = {m: pd.read_csv(EVAL / f"reliability_{m}_scaled.csv") for m in MODELS}

    OUT.mkdir(parents=True, exist_ok=True)
    method = get_method(params["kd"]["method"])
    figures = [  # independent of each other: drawn side by side, one process per core
        (P.training_curves, ({"kd": Path("reports/training/kd"), "hard": Path("reports/training/hard")},
                             tuple(dict.fromkeys(("ce", *method.terms))), OUT / "training.png", method.name)),
        (P.roc_curves, ({first_names[m]: first[m] for m in MODELS}, test.labels, names, OUT / "roc.png")),
        (P.confusion_matrices, (predictions, names, OUT / "confusion.png")),
        (P.reliability_diagrams, ({"before scaling": reliability, "after temperature scaling": scaled},
                                  OUT / "reliability.png")),
        (P.teacher_student_scatter, (first["teacher"], {first_names[m]: first[m] for m in ("kd", "hard")},
                                     test.labels, OUT / "scatter.png")),
        (P.confidence_histograms, (logits, test.labels, OUT / "confidence.png")),
    ]
    images = None if prepared.is_text else P.as_image(test.inputs, prepared.input_shape)
    if images is not None:
        note = f"; students: {runs['kd'][0]}, {runs['hard'][0]}"
        figures.append((P.prediction_grid, (images, test.labels, {m: first[m].argmax(1) for m in MODELS}, names,
                                            OUT / "examples.png", 24, note)))
    P.draw_figures(figures)

    metrics = json.loads(Path("reports/metrics.json").read_text())
    pngs = sorted(p.name for p in OUT.glob("*.png"))
    write_text(Path("reports/report.md"), render_report(params, prepared.meta, metrics, None, pngs,
                                                        **setting_inputs(params), predictions=predictions))
    print(f"wrote {pngs} to {OUT} and reports/report.md")


def language_model_plots(params: dict, meta: dict) -> None:
    """task causal_lm: training curves (validation perplexity), the perplexities, and the report."""
    from distillery.evaluation.lm_report import prompt_source, render_lm_report
    from distillery.methods import describe

    method = get_method(params["kd"]["method"])
    metrics = json.loads(Path("reports/metrics.json").read_text())
    OUT.mkdir(parents=True, exist_ok=True)
    P.training_curves({"kd": Path("reports/training/kd"), "hard": Path("reports/training/hard")},
                      tuple(dict.fromkeys(("ce", *method.terms))), OUT / "training.png", method.name,
                      validation=("eval/perplexity", "validation perplexity"))
    P.perplexities(metrics, OUT / "perplexity.png")
    continuations = json.loads((EVAL / "continuations.json").read_text())
    selections = {kind: load_selections(Path("reports/training") / kind) for kind in ("kd", "hard")}
    pngs = ["training.png", "perplexity.png"]
    method_text = describe(params["kd"])
    if "student_samples" in method.needs and prompt_source(meta):
        method_text += " (each row's own prompt is answered: prompt_tokens is not read)"
    write_text(Path("reports/report.md"), render_lm_report(params, meta, metrics, continuations, pngs, selections,
                                                           method_text))
    print(f"wrote {pngs} to {OUT} and reports/report.md")


if __name__ == "__main__":
    run_stage(main, uses_torch=False)
