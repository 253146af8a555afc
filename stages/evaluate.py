"""evaluate: teacher, KD and hard students on validation and test -> reports/metrics.json and reports/headline.json
(deterministic), the predictions and reliability tables under reports/eval, each model's test logits under
data/eval_logits, and reports/timings/speed.json (timings: they vary run to run,
so git ignores them)."""
from pathlib import Path

from distillery.cli import run_stage
from distillery.data.prepared import load_prepared
from distillery.evaluation.evaluate import evaluate
from distillery.evaluation.headline import headline
from distillery.io import TIMINGS_ROOT, atomic_dir, write_json, write_logits
from distillery.models.zoo import load_model
from distillery.models.text import saved_tokenizer
from distillery.params import load_params
from distillery.evaluation.plots import class_indices_of
from distillery.evaluation.report import majority_warning, summary_lines, teacher_warning
from distillery.evaluation.speed import int8_speed, measure_speed, speedups
from distillery.training.students import seed_dir, seeds_in
from distillery.training.teacher import load_teacher_and_tokenizer


def main() -> None:
    params = load_params()
    prepared = load_prepared(Path("data/prepared"))
    if prepared.is_lm:
        return evaluate_language_models(params, prepared)
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
    speed = measure_speed(models, inputs, ev["batch_size"], ev["timing_repeats"], ev["timing_warmup"], tokenizers,
                          budget_s=ev["timing_budget_s"])
    speed = {**speed, **speedups(speed)}
    if params["student"]["quantize"] == "int8":
        speed["int8"] = int8_speed(models["student"], inputs, ev["batch_size"], ev["timing_repeats"],
                                   ev["timing_warmup"], tokenizers and tokenizers["student"], ev["timing_budget_s"])
    write_json(TIMINGS_ROOT / "speed.json", speed)
    print(summary_lines(result.metrics, params["kd"]["method"]))
    predictions = class_indices_of(result.predictions, prepared.label_names)
    for warning in filter(None, [teacher_warning(result.metrics), majority_warning(predictions, prepared.label_names)]):
        print(f"WARNING: {warning}")


def evaluate_language_models(params: dict, prepared) -> None:
    """task causal_lm: perplexity and the rest per token, the KD-vs-hard bootstrap, the teacher's judgement of
    samples, with prompts each model's answers against the references, continuations and speed."""
    from distillery.evaluation.causal_lm import continuations, evaluate_lm, lm_speed
    from distillery.evaluation.lm_report import lm_summary_lines, lm_teacher_warning
    from distillery.models.causal_lm import load_causal_lm
    from distillery.models.inference import best_device
    from distillery.data.prepared import prompt_lengths, token_arrays
    from distillery.training.causal_lm import load_lm_teacher, prepared_tokenizer

    ev, device, tokenizer = params["evaluate"], best_device(), prepared_tokenizer()
    max_length = prepared.meta["max_length"]
    pad = tokenizer.pad_token_id  # prepare gives every corpus tokenizer one (its end-of-text token if it has none)
    teacher = load_lm_teacher()
    students = {kind: {seed: load_causal_lm(seed_dir(Path(f"models/students/{kind}"), seed))
                       for seed in seeds_in(Path(f"models/students/{kind}"))} for kind in ("kd", "hard")}
    splits = {name: (*token_arrays(prepared.splits[name]), prompt_lengths(prepared.splits[name]))
              for name in ("validation", "test")}
    samples = {"eos_id": tokenizer.eos_token_id, "prompts": ev["judged_samples"], "max_length": max_length,
               "seed": ev["bootstrap_seed"]}
    end_of_turn = prepared.meta.get("end_of_turn", "")  # a chat template's, cut from answers and references
    answers = {"tokenizer": tokenizer, "prompts": ev["responses"], "max_length": max_length,
               "end_of_turn": end_of_turn}
    metrics, tables = evaluate_lm(teacher, students, splits, pad, ev["batch_size"], ev["bootstrap_samples"],
                                  ev["bootstrap_seed"], device, samples, answers)
    first = {"teacher": teacher, **{f"{kind}_seed{next(iter(seeds))}": next(iter(seeds.values()))
                                    for kind, seeds in students.items()}}
    with atomic_dir(Path("reports/eval")) as out:
        write_json(out / "continuations.json", continuations(first, tokenizer, splits["validation"], max_length, device,
                                                             end_of_turn=end_of_turn))
    with atomic_dir(Path("data/eval_logits")) as out:  # per sequence: tokens and each model's summed NLL, by id
        for name, table in tables.items():
            table.insert(0, "id", prepared.splits[name].ids)
            table.to_parquet(out / f"sequence_nll_{name}.parquet", index=False)
    write_json(Path("reports/metrics.json"), metrics)
    write_json(Path("reports/headline.json"), headline(metrics))
    write_json(TIMINGS_ROOT / "speed.json", lm_speed(first, splits["test"], pad, ev["batch_size"],
                                                     ev["timing_repeats"], ev["timing_warmup"], tokenizer, max_length,
                                                     device, ev["timing_budget_s"]))
    print(lm_summary_lines(metrics))
    warning = lm_teacher_warning(metrics)
    if warning:
        print(f"WARNING: {warning}")


if __name__ == "__main__":
    run_stage(main, record=Path("reports/eval"))
