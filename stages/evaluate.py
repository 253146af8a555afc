"""evaluate: teacher, KD and hard students on validation and test -> reports/metrics.json and reports/headline.json
(deterministic), the predictions and reliability tables under reports/eval, each model's test logits under
data/eval_logits, and reports/timings/speed.json (timings: they vary run to run,
so git ignores them)."""
from pathlib import Path

from distillery.cli import run_stage
from distillery.data.prepared import load_prepared
from distillery.evaluation.evaluate import evaluate, headline
from distillery.io import TIMINGS_ROOT, atomic_dir, write_json, write_logits
from distillery.models.zoo import load_model
from distillery.models.text import saved_tokenizer
from distillery.params import load_params
from distillery.evaluation.report import metrics_table, teacher_warning
from distillery.evaluation.speed import int8_speed, measure_speed, speedups
from distillery.training.students import seed_dir, seeds_in
from distillery.training.teacher import load_teacher_and_tokenizer


def main() -> None:
    params = load_params()
    prepared = load_prepared(Path("data/prepared"))
    students = {"kd": Path("models/students/kd"), "hard": Path("models/students/hard")}
    result = evaluate(params, prepared, Path("models/teacher"), students)
    test_ids = prepared.splits["test"].ids
    with atomic_dir(Path("reports/eval")) as out:
        result.predictions.to_csv(out / "predictions.csv", index=False)
        for name, table in result.reliability.items():
            table.to_csv(out / f"reliability_{name}.csv", index=False, float_format="%.6g")
    with atomic_dir(Path("data/eval_logits")) as out:  # per-row test logits: intermediate, in the DVC cache
        for name, logits in result.test_logits.items():
            write_logits(out / f"{name}.parquet", test_ids, logits)
    write_json(Path("reports/metrics.json"), result.metrics)
    write_json(Path("reports/headline.json"), headline(result.metrics))

    ev = params["evaluate"]
    student_dir = seed_dir(students["kd"], seeds_in(students["kd"])[0])
    teacher, teacher_tokenizer = load_teacher_and_tokenizer(Path("models/teacher"))
    models = {"teacher": teacher, "student": load_model(student_dir)}
    test = prepared.splits["test"]
    tokenizers = {"teacher": teacher_tokenizer, "student": saved_tokenizer(student_dir)} if prepared.is_text else None
    inputs = test if prepared.is_text else test.inputs
    speed = measure_speed(models, inputs, ev["batch_size"], ev["timing_repeats"], ev["timing_warmup"], tokenizers)
    speed = {**speed, **speedups(speed)}
    if params["student"]["quantize"] == "int8":
        speed["int8"] = int8_speed(models["student"], inputs, ev["batch_size"], ev["timing_repeats"],
                                   ev["timing_warmup"], tokenizers and tokenizers["student"])
    write_json(TIMINGS_ROOT / "speed.json", speed)
    print(metrics_table(result.metrics, params["kd"]["method"]))
    warning = teacher_warning(result.metrics)
    if warning:
        print(f"WARNING: {warning}")


if __name__ == "__main__":
    run_stage(main, record=Path("reports/eval"))
