"""GPU check: chosen presets end to end with `dvc repro` on one GPU, within a time budget.

Each preset runs in its own fresh copy of this working tree (tracked files, uncommitted edits included), stage by
stage (`python -m dvc repro --single-item STAGE`, dvc.yaml order), with `precision: auto` (bf16 on a GPU that has
it). `--budget-s` is the whole check's wall time: each preset gets a share, and its schedule (teacher and student
`max_steps`, with `eval_steps`, `save_steps` and `warmup_steps` in proportion) is the full one or the largest
fraction of it that the share fits by the estimate below. The estimate: `--stage-s` per stage (start-up, imports,
data, inference) plus every training step at `--step-ms` (array models) or `--text-step-ms` (text models); the
results record what each step really cost, to calibrate the next check. A stage still running when the budget is
spent is stopped, and the preset reported as cut short.

`--compare KEY=VALUE` (repeatable) then changes those params in the same copy and runs `dvc repro` again, so
only the stages they touch re-run (`--compare train.precision=fp32`: the students, on the teacher already trained),
within the same schedule and budget; the record sets the two runs' students side by side (mean test accuracy over
the seeds, the difference, and whether it is within the larger seed standard deviation).

Per preset, `bench/results/gpu_<preset>[-<label>].json` (written after every stage, so a check cut short keeps what
it measured): the GPU, the versions, the schedule, each stage's seconds, and `reports/metrics.json`; each stage's
output goes to `<out>/logs/`. The presets read `../shared/data`, which a GPU machine may not have: `--data DIR`
names where the files are (the copy's params point there). The stages run on the interpreter that runs the check
(its folder first on PATH). The check exits with 1, naming the presets, when a stage failed (not when the budget
stopped one).

Run: `python bench/gpu_check.py --budget-s 480 [--presets mnist-hinton sst2-minilm-transfer] [--data DIR]
[--set train.seeds=[0] ...] [--compare train.precision=fp32 ...] [--label NAME]`. Needs a CUDA GPU (`--allow-cpu`
runs the same on a CPU, to try the check itself).
Installs: requirements.txt, after the CUDA build of torch (README).
"""
from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # distillery, when run as `python bench/gpu_check.py`
from bench.pipeline_time import copy_worktree  # noqa: E402
from distillery.experiments.presets import resolve  # noqa: E402
from distillery.io import TIMINGS_ROOT  # noqa: E402

PRESETS = ["mnist-hinton", "sst2-minilm-transfer"]
PRESETS_DIR = REPO / "presets"
PAPER_TEST_ERRORS = {"mnist-hinton": {"teacher": 67, "hard": 146, "kd": 74}}  # Hinton et al. 2015, section 3
SHARED_DATA = "../shared/data"  # how the presets name the shared files
SCALED = ("max_steps", "eval_steps", "save_steps", "warmup_steps")  # a train block's keys a schedule scales
MIN_FRACTION = 0.002
STUDENT_SIDE = ("train.", "kd.", "student.")  # params that only the students' stages (and evaluation) read


def training_steps(params: dict) -> tuple[int, int]:
    """(teacher steps, student steps) of the full schedule: the teacher's max_steps when it trains here (early
    stopping may end it sooner), and each seed's distilled and hard student."""
    teacher = params["teacher"]
    trains_teacher = teacher["checkpoint"] is None and (teacher["model"]["arch"] != "hf" or teacher["finetune"])
    students = 2 * len(params["train"]["seeds"]) * params["train"]["max_steps"]
    return (teacher["train"]["max_steps"] if trains_teacher else 0), students


def is_text(params: dict) -> bool:
    return params["student"]["model"]["arch"] == "hf"


def rerun_steps(compared: dict, compare: list[str]) -> int:
    """Training steps that ``compare`` (KEY=VALUE overrides) re-runs in a copy that has run the preset, with
    ``compared`` the params they give: the students' when it changes only student-side params, else every run's."""
    teacher, students = training_steps(compared)
    return students if all(item.startswith(STUDENT_SIDE) for item in compare) else teacher + students


def estimate_s(params: dict, fraction: float, stages: int, stage_s: float, step_ms: float, text_step_ms: float,
               compare_steps: int = 0) -> float:
    """Seconds the preset should take at ``fraction`` of its schedule, with ``compare_steps`` more training steps
    (a comparison's, which starts every stage again) when there is one (see the module's docstring)."""
    per_step = text_step_ms if is_text(params) else step_ms
    runs = 2 if compare_steps else 1
    return runs * stages * stage_s + fraction * (sum(training_steps(params)) + compare_steps) * per_step / 1000


def fraction_for(params: dict, share_s: float, stages: int, stage_s: float, step_ms: float,
                 text_step_ms: float, compare_steps: int = 0) -> float:
    """The largest fraction of the schedule (at most 1, at least ``MIN_FRACTION``) that fits ``share_s``."""
    full = estimate_s(params, 1.0, stages, stage_s, step_ms, text_step_ms, compare_steps)
    fixed = estimate_s(params, 0.0, stages, stage_s, step_ms, text_step_ms, compare_steps)
    if full <= share_s:
        return 1.0
    return max(MIN_FRACTION, (share_s - fixed) / (full - fixed))


def allocate(costs: dict[str, float], budget_s: float) -> dict[str, float]:
    """Each preset's share of ``budget_s``: the cheapest first, each at most its full cost, what one leaves over
    goes to the rest in equal parts."""
    shares, left = {}, budget_s
    for i, name in enumerate(sorted(costs, key=costs.get)):
        shares[name] = min(costs[name], left / (len(costs) - i))
        left -= shares[name]
    return {name: shares[name] for name in costs}


def schedule_sets(params: dict, fraction: float) -> list[str]:
    """``--set`` overrides for ``fraction`` of the schedule: the teacher's and the students' step counts scaled
    (at least 1; eval and save steps no more than max_steps)."""
    if fraction >= 1.0:
        return []
    sets = []
    for where, block in (("teacher.train", params["teacher"]["train"]), ("train", params["train"])):
        steps = max(1, round(block["max_steps"] * fraction))
        for key in SCALED:
            value = steps if key == "max_steps" else round(block[key] * fraction)
            if key in ("eval_steps", "save_steps"):
                value = min(steps, max(1, value))
            sets.append(f"{where}.{key}={value}")
    return sets


def point_at(value, data: Path):
    """``value`` (a params tree) with every ``../shared/data`` path pointing at ``data`` instead."""
    if isinstance(value, dict):
        return {k: point_at(v, data) for k, v in value.items()}
    if isinstance(value, list):
        return [point_at(v, data) for v in value]
    if isinstance(value, str) and SHARED_DATA in value:
        return value.replace(SHARED_DATA, str(data))
    return value


def environment(work: Path) -> dict:
    """The stages' environment: the copy's package first on PYTHONPATH (instead of this tree's), and this
    interpreter's folder first on PATH, so that the stages' `python` is the one running the check (a virtual
    environment that was not activated); the rest kept."""
    kept = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p and Path(p).resolve() != REPO]
    path = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(work), *kept]), "PATH": path, "PYTHONUNBUFFERED": "1"}


def stage_names(work: Path) -> list[str]:
    stages = yaml.safe_load((work / "dvc.yaml").read_text())["stages"]
    return [name for name, stage in stages.items() if "foreach" not in stage and "matrix" not in stage]


def run_command(cmd: list[str], work: Path, log, timeout_s: float) -> int | None:
    """``cmd`` in ``work``, output to ``log``; its exit status, or None when it ran past ``timeout_s`` (then its
    whole process group is stopped: for a stage, dvc and the stage's own process)."""
    process = subprocess.Popen(cmd, cwd=work, env=environment(work), stdout=log, stderr=subprocess.STDOUT,
                               start_new_session=True)
    try:
        return process.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
        return None


def step_costs(work: Path) -> dict[str, float]:
    """Milliseconds per training step of each run (the Trainer's train_runtime over its steps: evaluations and
    checkpoints included), from the timings the training stages keep beside the curves."""
    costs = {}
    for path in sorted((work / TIMINGS_ROOT / "training").rglob("*.json")):
        finals = [row for row in json.loads(path.read_text()).values() if "train_steps_per_second" in row]
        if finals:
            name = path.relative_to(work / TIMINGS_ROOT / "training").with_suffix("").as_posix()
            costs[name] = round(1000 / finals[-1]["train_steps_per_second"], 3)
    return costs


def device_facts() -> dict:
    import torch

    facts = {"torch": torch.__version__, "cuda": torch.version.cuda, "cpus": os.cpu_count()}
    if torch.cuda.is_available():
        facts |= {"gpu": torch.cuda.get_device_name(), "bf16": torch.cuda.is_bf16_supported()}
    return facts


def scores(work: Path, name: str, done: list[str]) -> dict:
    """The preset's ``reports/metrics.json`` and test errors (beside the paper's), once its ``evaluate`` stage has
    run in this check; before that the copy's file is the committed default's, which says nothing of the preset."""
    if "evaluate" not in done:
        return {}
    metrics = json.loads((work / "reports/metrics.json").read_text())
    found = {"metrics": metrics, "test_errors": {who: metrics[who].get("errors") for who in ("teacher", "kd", "hard")}}
    if name in PAPER_TEST_ERRORS:
        found["paper_test_errors"] = PAPER_TEST_ERRORS[name]
    return found


def run_stages(work: Path, stages: list[str], log_prefix: str, out: Path, deadline: float, record: dict,
               save) -> list[str]:
    """Each stage in ``work`` with ``dvc repro --single-item`` (dvc skips a stage that did not change), its seconds
    (and, when dvc skipped it, its name under ``skipped``) into ``record``; stops at the first stage that fails or
    runs past ``deadline``. The stages that ran or were up to date."""
    done = []
    start = time.perf_counter()
    for stage in stages:
        log = out / "logs" / f"{log_prefix}-{stage}.log"
        t0 = time.perf_counter()
        with log.open("w") as handle:
            returncode = run_command([sys.executable, "-m", "dvc", "repro", "--single-item", stage], work,
                                     handle, max(1.0, deadline - time.monotonic()))
        if returncode is None:
            record["cut_short"] = f"the budget ran out during stage {stage!r}"
        elif returncode:
            record["failed"] = f"stage {stage!r} exited {returncode}: see {log}"
        else:
            done.append(stage)
            if f"Stage '{stage}' didn't change, skipping" in log.read_text():
                record.setdefault("skipped", []).append(stage)
        record["seconds"][stage] = round(time.perf_counter() - t0, 2)
        print(f"{log_prefix} {stage}: {record['seconds'][stage]:.1f} s", flush=True)
        save()
        if "cut_short" in record or "failed" in record:
            break
    record["seconds"]["total"] = round(time.perf_counter() - start, 2)
    return done


def side_by_side(main: dict, compared: dict, metric: str = "accuracy") -> dict:
    """Each student's (``kd``, ``hard``) mean test ``metric`` over the seeds in two runs' metrics, the difference
    (compared less main) and whether it is within the larger of the two seed standard deviations (None with one
    seed: no spread to compare with)."""
    rows = {}
    for who in ("kd", "hard"):
        a, b = main[who], compared[who]
        spreads = [run[f"{metric}_std"] for run in (a, b) if f"{metric}_std" in run]
        difference = b[metric] - a[metric]
        rows[who] = {"main": a[metric], "main_std": a.get(f"{metric}_std"), "compared": b[metric],
                     "compared_std": b.get(f"{metric}_std"), "difference": difference,
                     "within_spread": abs(difference) <= max(spreads) if spreads else None}
    return rows


def compare_steps_of(name: str, args) -> int:
    """The training steps of the preset's comparison (``args.compare``) on its full schedule; 0 without one."""
    if not args.compare:
        return 0
    return rerun_steps(resolve(name, [*args.sets, *args.compare], PRESETS_DIR), args.compare)


def run_preset(name: str, sets: list[str], share_s: float, deadline: float, args, out: Path, facts: dict) -> dict:
    """One preset in a fresh copy, stage by stage, then its comparison (``args.compare``) in the same copy; the
    record is saved after every stage."""
    result = {"preset": name, "date": datetime.now(timezone.utc).isoformat(timespec="seconds"), **facts,
              "command": " ".join(["python", "bench/gpu_check.py", *sys.argv[1:]]), "share_s": round(share_s, 1)}
    path = out / (f"gpu_{name}-{args.label}.json" if args.label else f"gpu_{name}.json")
    save = lambda: path.write_text(json.dumps(result, indent=2) + "\n")  # noqa: E731
    with tempfile.TemporaryDirectory(prefix=f"gpu-check-{name}-") as tmp:
        work = copy_worktree(Path(tmp))
        stages = stage_names(work)
        params = resolve(name, sets, PRESETS_DIR)
        fraction = fraction_for(params, share_s, len(stages), args.stage_s, args.step_ms, args.text_step_ms,
                                compare_steps_of(name, args))
        full_steps = training_steps(params)
        schedule = schedule_sets(params, fraction)
        params = point_at(resolve(name, [*sets, *schedule], PRESETS_DIR), args.data)
        (work / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False, allow_unicode=True))
        result |= {"sets": sets, "schedule_fraction": round(fraction, 4), "full_schedule_steps":
                   dict(zip(("teacher", "students"), full_steps)),
                   "steps": dict(zip(("teacher", "students"), training_steps(params))),
                   "precision": params["train"]["precision"], "seconds": {}}
        save()
        done = run_stages(work, stages, name, out, deadline, result, save)
        result["ms_per_step"] = step_costs(work)
        result |= scores(work, name, done)
        save()
        if args.compare and len(done) == len(stages):
            compared = point_at(resolve(name, [*sets, *schedule, *args.compare], PRESETS_DIR), args.data)
            (work / "params.yaml").write_text(yaml.safe_dump(compared, sort_keys=False, allow_unicode=True))
            record = result["compare"] = {"sets": args.compare, "precision": compared["train"]["precision"],
                                          "seconds": {}}
            done = run_stages(work, stages, f"{name}-compare", out, deadline, record, save)
            record["ms_per_step"] = step_costs(work)
            record |= scores(work, name, done)
            if "metrics" in record:
                record["students_side_by_side"] = side_by_side(result["metrics"], record["metrics"])
            save()
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--presets", nargs="+", default=PRESETS)
    parser.add_argument("--budget-s", type=float, default=480.0, help="the whole check's wall time")
    parser.add_argument("--set", dest="sets", action="append", default=[], metavar="KEY=VALUE",
                        help="a param override for every preset, e.g. --set train.seeds=[0] (repeatable)")
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared/data",
                        help="where the presets' ../shared/data files are")
    parser.add_argument("--compare", action="append", default=[], metavar="KEY=VALUE",
                        help="then, in the same copy, these params changed and dvc repro again, e.g. "
                             "--compare train.precision=fp32 (repeatable)")
    parser.add_argument("--label", default="", help="results go to gpu_<preset>-<label>.json")
    parser.add_argument("--out", type=Path, default=REPO / "bench/results")
    parser.add_argument("--stage-s", type=float, default=8.0, help="estimate: seconds per stage beyond training")
    parser.add_argument("--step-ms", type=float, default=1.5, help="estimate: ms per training step, array models")
    parser.add_argument("--text-step-ms", type=float, default=12.0, help="estimate: ms per step, text models")
    parser.add_argument("--allow-cpu", action="store_true", help="run without a GPU (to try the check itself)")
    args = parser.parse_args()
    deadline = time.monotonic() + args.budget_s
    facts = device_facts()
    if "gpu" not in facts and not args.allow_cpu:
        sys.exit("error: no CUDA GPU here (--allow-cpu runs the check on the CPU anyway)")
    args.data = args.data.resolve()
    (args.out / "logs").mkdir(parents=True, exist_ok=True)
    stages = len(stage_names(REPO))
    costs = {name: estimate_s(resolve(name, args.sets, PRESETS_DIR), 1.0, stages, args.stage_s, args.step_ms,
                              args.text_step_ms, compare_steps_of(name, args))
             for name in args.presets}
    shares = allocate(costs, args.budget_s)
    print(f"{facts}; budget {args.budget_s:.0f} s: " + ", ".join(
        f"{name} {shares[name]:.0f} s (full schedule ~{costs[name]:.0f} s)" for name in args.presets), flush=True)
    failed = []
    for name in args.presets:
        if time.monotonic() >= deadline:
            print(f"{name}: skipped, the budget is spent", flush=True)
            continue
        result = run_preset(name, args.sets, shares[name], deadline, args, args.out, facts)
        paper = f" (the paper: {result['paper_test_errors']})" if "paper_test_errors" in result else ""
        print(f"{name}: {result['seconds'].get('total', 0):.0f} s at {result['schedule_fraction']:.3g} of the "
              f"schedule; test errors {result.get('test_errors')}{paper}; ms per step {result.get('ms_per_step')} "
              f"{result.get('cut_short', result.get('failed', ''))}", flush=True)
        if "compare" in result:
            compared = result["compare"]
            print(f"{name} with {' '.join(args.compare)}: {compared['seconds'].get('total', 0):.0f} s; test errors "
                  f"{compared.get('test_errors')}; students side by side {compared.get('students_side_by_side')} "
                  f"{compared.get('cut_short', compared.get('failed', ''))}", flush=True)
        failed += [name for record in (result, result.get("compare", {})) if "failed" in record]
    if failed:  # a stage that exited with an error, not one the budget stopped
        sys.exit(f"error: a stage failed in {', '.join(failed)} (its log is under {args.out / 'logs'})")


if __name__ == "__main__":
    main()
