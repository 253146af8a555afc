"""``python -m distillery.export OUT``: one trained student, ready to hand over, with a model card.

OUT receives the student's folder as the pipeline saved it (weights, config, tokenizer, ``inputs.json``: what
``make predict`` and ``from_pretrained`` read), a ``README.md`` model card (Hugging Face's format: YAML metadata, then
how the model was made and how it scores against its teacher and the hard-label baseline), and
``distillation.json``, the same facts for programs (the validated params, the commit, the seed and its scores).

The seed is chosen on validation, never on test: the one with the highest validation accuracy at its checkpoint
(language models: the lowest validation NLL per token; ties: the lower seed); ``--seed`` takes another. ``--kind
hard`` exports a hard-label student instead. The card's figures are read from this workspace's ``reports/``, so the
workspace must be what its params make (``dvc status`` clean: run ``dvc repro`` first); an experiment is exported
after ``dvc exp apply``.
"""
from __future__ import annotations

import argparse
import json
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

from .data.inputs import load_record
from .data.prepared import META_FILE
from .data.sources import RECORD_KEY, WATCH_FOLDER, in_repo_copy, stage_records, stale_stages
from .errors import DistilleryError, exit_on_error
from .evaluation.lm_report import lm_setting_table
from .evaluation.plots import read_predictions
from .evaluation.report import evaluated_on, report_warnings, setting_inputs, setting_table, significance_verdict
from .evaluation.wording import budget_caveat, counted
from .io import atomic_dir, umask, write_json, write_text
from .methods import describe, get_method
from .params import SCHEMA, load_params, validate
from .schema import flatten, leaves

KINDS = {"kd": "distilled", "hard": "hard-label"}
RECORD_FILE = "distillation.json"
CARD_FILE = "README.md"
MANAGED = ("models", "data", "reports", ".dvc", ".git")  # DVC's outputs and both tools' own folders


def pick_seed(selections: list[dict], language_model: bool) -> int:
    """The seed whose checkpoint scored best on validation: highest accuracy, or (language models) lowest NLL per
    token; ties go to the lower seed. ``selections``: each seed's ``selection.json`` with its ``seed``."""
    key = "validation_nll" if language_model else "validation_accuracy"
    scored = [s for s in selections if s.get(key) is not None]
    if not scored:
        raise DistilleryError(f"no seed has a {key.replace('_', ' ')} at its checkpoint (selection.json): give --seed")
    sign = 1 if language_model else -1
    return min(scored, key=lambda s: (sign * s[key], s["seed"]))["seed"]


def seed_scores(predictions, kind: str, seed: int) -> dict:
    """A classifier's test scores from evaluate's ``predictions.csv`` (a column per model): the scored rows,
    accuracy, errors, macro-F1 and top-1 agreement with the teacher."""
    from sklearn.metrics import f1_score

    predicted, labels = predictions[f"{kind}_seed{seed}"].to_numpy(), predictions["label"].to_numpy()
    return {"rows": len(labels), "accuracy": float((predicted == labels).mean()),
            "errors": int((predicted != labels).sum()),
            "macro_f1": float(f1_score(labels, predicted, average="macro")),
            "agreement": float((predicted == predictions["teacher"].to_numpy()).mean())}


def card_warnings(meta: dict, metrics: dict, predictions, kind: str, seed: int) -> list[str]:
    """The report's warnings that concern this model: the data's, the teacher's, and its own when it is no better
    than the most common class (``predictions``: evaluate's test predictions, None for a language model)."""
    own = None if predictions is None else predictions[["id", "label", f"{kind}_seed{seed}"]]
    return report_warnings(meta, metrics, own)


def lm_seed_scores(metrics: dict, kind: str, seeds: list[int], seed: int) -> dict:
    """A language model's test and validation perplexity from ``metrics.json``'s per-seed lists (seed order)."""
    at = sorted(seeds).index(seed)
    return {"perplexity": metrics[kind]["perplexity_seeds"][at],
            "validation_perplexity": metrics[kind]["validation_perplexity_seeds"][at]}


def _tool(cmd: list[str]) -> subprocess.CompletedProcess:
    """Run git or dvc; a one-line refusal where it is not installed."""
    try:
        return subprocess.run(cmd, capture_output=True, text=True)
    except FileNotFoundError:
        raise DistilleryError(f"`{cmd[0]}` not found: activate the project's environment (`source .venv/bin/activate`) "
                              "or run `make export`") from None


def params_changes(committed: dict | None, current: dict) -> dict:
    """The params whose values as the stages read them (defaults filled in) differ from the commit's params.yaml:
    ``{key: {"commit": value, "now": value, "written": whether the commit's params.yaml writes the key}}``, so a
    key written out at its default (``make preset`` writes every one) is no change. Where either file does not
    validate (a commit from before a param was renamed), the files are compared as written, and a side is left
    out where the key is absent there."""
    try:
        before, now = leaves(validate(committed or {}), SCHEMA), leaves(validate(current), SCHEMA)
    except DistilleryError:
        before, now = flatten(committed or {}), flatten(current)
    written = flatten(committed or {})
    changes = {}
    for key in sorted(before.keys() | now.keys()):
        if key in before and key in now and before[key] == now[key]:
            continue
        changes[key] = (({"commit": before[key]} if key in before else {}) | ({"now": now[key]} if key in now else {})
                        | {"written": key in written or any(k.startswith(f"{key}.") for k in written)})
    return changes


def set_args(changes: dict) -> str | None:
    """The ``dvc exp run`` options that turn the commit's params.yaml into this one (``++`` for a key the commit's
    file does not write), or None when a key was removed (``-S`` cannot say that)."""
    if any("now" not in change for change in changes.values()):
        return None
    parts = []
    for key, change in changes.items():
        value = yaml.safe_dump(change["now"], default_flow_style=True, width=1000).removesuffix("...\n").strip()
        parts.append("-S " + shlex.quote(f"{'' if change['written'] else '++'}{key}={value}"))
    return " ".join(parts)


def workspace_state(kind: str) -> dict:
    """The commit, how params.yaml and the other tracked files differ from it, and the students' folder hash in
    dvc.lock; refused unless ``dvc status`` says every output is what the workspace's params and code make."""
    status = _tool(["dvc", "status", "--json"])
    if status.returncode != 0:
        raise DistilleryError(f"dvc status failed: {(status.stderr or status.stdout).strip()}")
    changed = {stage: said for stage, said in json.loads(status.stdout or "{}").items()
               if said != ["always changed"]}  # the sources stage: stale_stages below checks what it watches
    if changed:
        raise DistilleryError(f"the workspace's outputs are not those of its params and code (dvc status: "
                              f"{', '.join(sorted(changed))} changed): run `dvc repro` first")
    stale = stale_stages()
    if stale:
        raise DistilleryError("data files or checkpoints changed since the stages read them ("
                              + "; ".join(f"{stage}: {', '.join(changes)}" for stage, changes in stale.items())
                              + "): `dvc repro` runs those stages again" + (
                                  " (a file that is gone: put it back, or point its param at where it is now)"
                                  if any(change.endswith(" is gone") for changes in stale.values()
                                         for change in changes) else ""))
    commit = _tool(["git", "rev-parse", "HEAD"]).stdout.strip() or None
    shown = _tool(["git", "show", "HEAD:params.yaml"])
    committed = yaml.safe_load(shown.stdout) if shown.returncode == 0 else None
    current = yaml.safe_load(Path("params.yaml").read_text()) or {}
    files = _tool(["git", "status", "--porcelain", "--untracked-files=no"]).stdout.splitlines()
    other = sorted(path for path in (line[3:] for line in files)  # outputs, the lock and the digests of the data
                   if path not in ("params.yaml", "dvc.lock")  # files (listed below) follow from the rest
                   and not path.startswith(("reports/", f"{WATCH_FOLDER.as_posix()}/")))
    folder = f"models/students/{kind}"
    lock = yaml.safe_load(Path("dvc.lock").read_text()) if Path("dvc.lock").exists() else {}
    md5 = next((out["md5"] for stage in (lock or {}).get("stages", {}).values() for out in stage.get("outs", [])
                if out.get("path") == folder), None)
    return {"commit": commit, "params_changed": params_changes(committed, current) if commit else {},
            "files_changed": other, "students_md5": md5, "data_files": data_files()}


def data_files(root: Path = Path(".")) -> dict[str, dict]:
    """The data files and local checkpoints params.yaml names, as the stages that read them recorded them (sha256,
    bytes), and whether a clone of the commit holds them (``in_commit``: inside the repo and tracked by git or
    DVC)."""
    files = {}
    for record in stage_records(root).values():
        if (root / record).is_file():
            files.update(json.loads((root / record).read_text()).get(RECORD_KEY, {}))
    top = root.resolve()
    for path, file in files.items():
        where = (top / path).resolve()
        file["in_commit"] = where.is_relative_to(top) and where.exists() and in_repo_copy(where, top)
    return dict(sorted(files.items()))


def check_out(out: Path) -> dict | None:
    """OUT may be new, empty or an earlier export holding only what it wrote (replaced: its record is returned);
    never a folder DVC or git manages, nor one with other files (an export replaces the whole folder)."""
    inside = next((m for m in MANAGED if out.resolve().is_relative_to(Path(m).resolve())), None)
    if inside:
        raise DistilleryError(f"{out}: inside {inside}/, which {'git' if inside == '.git' else 'DVC'} manages: export "
                              "elsewhere (e.g. export/kd)")
    if not out.exists() or (out.is_dir() and not any(out.iterdir())):
        return None
    if not out.is_dir() or not (out / RECORD_FILE).exists():
        raise DistilleryError(f"{out}: exists and is not an earlier export: remove it or choose another folder")
    earlier = json.loads((out / RECORD_FILE).read_text())
    foreign = sorted({p.name for p in out.iterdir()} - set(earlier.get("files", [])))
    if foreign:
        raise DistilleryError(f"{out}: an earlier export, with files it did not write ({', '.join(foreign)}); an "
                              "export replaces the whole folder: move them, or export elsewhere and copy")
    return earlier


def _modes_of_umask(folder: Path) -> None:
    """The folder and its files readable as the user's umask says (the copies keep the modes of models/' files,
    which DVC's cache may have made read-only)."""
    mask = umask()
    for path in (folder, *folder.rglob("*")):
        path.chmod((0o777 if path.is_dir() else 0o666) & ~mask)


def _front_matter(meta: dict, params: dict) -> list[str]:
    """Hugging Face model-card metadata: the tags, and the library and pipeline tag where transformers has the
    model's class (text and language models)."""
    if meta.get("kind") == "causal_lm":
        library = ["library_name: transformers", "pipeline_tag: text-generation"]
    elif params["student"]["model"]["arch"] == "hf":
        library = ["library_name: transformers", "pipeline_tag: text-classification"]
    else:  # the MLP and CNN classes are the pipeline's: transformers alone cannot load them
        library = []
    return ["---", *library, "tags:", "- knowledge-distillation", "- distillery", "---", ""]


def _mean(block: dict, key: str, fmt: str = ".4f") -> str:
    """Mean ± std over the seeds; one seed's figure alone (it has no spread)."""
    spread = key + "_std" in block and block.get("seeds", 1) > 1
    return f"{block[key]:{fmt}} ± {block[key + '_std']:{fmt}}" if spread else f"{block[key]:{fmt}}"


def _results_table(metrics: dict, kind: str, seed: int, rows: list[tuple[str, ...]]) -> list[str]:
    """This model's column beside the teacher's and both kinds of student (``rows``: a name, then the four cells)."""
    seeds = counted(metrics["kd"].get("seeds", 1), "seed")
    header = (f"| | this model ({KINDS[kind]}, seed {seed}) | teacher | distilled students ({seeds}) "
              f"| hard-label students ({seeds}) |")
    return [header, "|---|---|---|---|---|", *("| " + " | ".join(row) + " |" for row in rows)]


def classifier_results(metrics: dict, meta: dict, method: str, kind: str, seed: int, scores: dict,
                       validation: float, caveat: str | None = None) -> list[str]:
    """This model's test scores beside the teacher's and both kinds of student (mean ± std over seeds), and
    whether distillation beat the hard labels (with the report's ``caveat`` on the budget, if any)."""
    seeds = metrics["kd"].get("seeds", 1)
    teacher, kd, hard = metrics["teacher"], metrics["kd"], metrics["hard"]
    rows = [("accuracy", f"{scores['accuracy']:.4f}", f"{teacher['accuracy']:.4f}", _mean(kd, "accuracy"),
             _mean(hard, "accuracy")),
            ("errors", f"{scores['errors']:,}", f"{teacher['errors']:,.0f}", _mean(kd, "errors", ".1f"),
             _mean(hard, "errors", ".1f")),
            ("macro-F1", f"{scores['macro_f1']:.4f}", f"{teacher['macro_f1']:.4f}", _mean(kd, "macro_f1"),
             _mean(hard, "macro_f1")),
            ("top-1 agreement with the teacher", f"{scores['agreement']:.4f}", "—", _mean(kd, "agreement"),
             _mean(hard, "agreement")),
            ("validation accuracy (at the checkpoint)", f"{validation:.4f}", f"{teacher['validation_accuracy']:.4f}",
             _mean(kd, "validation_accuracy"), _mean(hard, "validation_accuracy")),
            ("parameters", f"{metrics[kind]['params']:,}", f"{teacher['params']:,}", f"{kd['params']:,}",
             f"{hard['params']:,}")]
    return [f"{evaluated_on(meta)}: {scores['rows']:,} rows; the validation row is on the split that chose each "
            "checkpoint.", "",
            *_results_table(metrics, kind, seed, rows), "", significance_verdict(metrics["comparison"], seeds, method),
            *(["", caveat] if caveat else [])]


def lm_results(metrics: dict, kind: str, seed: int, scores: dict) -> list[str]:
    """This language model's perplexities beside the teacher's and both kinds of student, and KD − hard."""
    comparison = metrics["comparison"]
    teacher, kd, hard = metrics["teacher"], metrics["kd"], metrics["hard"]
    rows = [("test perplexity", f"{scores['perplexity']:.3f}", f"{teacher['perplexity']:.3f}",
             _mean(kd, "perplexity", ".3f"), _mean(hard, "perplexity", ".3f")),
            ("validation perplexity", f"{scores['validation_perplexity']:.3f}",
             f"{teacher['validation_perplexity']:.3f}", _mean(kd, "validation_perplexity", ".3f"),
             _mean(hard, "validation_perplexity", ".3f")),
            ("parameters", f"{metrics[kind]['params']:,}", f"{teacher['params']:,}", f"{kd['params']:,}",
             f"{hard['params']:,}")]
    if "rouge_l" in teacher:  # answers to the test prompts: means over seeds only (with one seed, this model's)
        own = metrics[kind].get("seeds", 1) == 1
        rows += [(f"{words} of the greedy test answers", f"{metrics[kind][key]:.4f}" if own else "—",
                  f"{teacher[key]:.4f}", _mean(kd, key), _mean(hard, key))
                 for key, words in (("rouge_l", "ROUGE-L F1"), ("exact_match", "exact match"))]
    return ["Perplexity per token (lower is better).", "", *_results_table(metrics, kind, seed, rows), "",
            f"Distilled − hard in NLL per token on test, the seeds pooled: {comparison['kd_minus_hard_nll']:+.4f} "
            f"(paired bootstrap 95 % interval {comparison['kd_minus_hard_nll_ci_low']:+.4f} to "
            f"{comparison['kd_minus_hard_nll_ci_high']:+.4f}; negative: distillation helped)."]


def inputs_text(record: dict) -> str:
    """What a classifier takes, in words, from its ``inputs.json``."""
    if record["kind"] == "array":
        from .data.layout import layout_shape

        layout = record.get("channels")  # images of 3 dims: as the source holds them (predict moves them)
        shape = f"{layout_shape(record['shape'], layout)}" + (f" (channels {layout})" if layout else "")
        if record["pixel_max"] is None:
            return f"arrays of shape {shape}, as the source gives them"
        return f"images of shape {shape} with pixels from 0 to {record['pixel_max']:g}, as the source gives them"
    if record["kind"] == "table":
        columns = ", ".join(f"`{c}`" for c in record["feature_columns"][:12])
        more = f" and {len(record['feature_columns']) - 12} more" if len(record["feature_columns"]) > 12 else ""
        return f"table rows with the columns {columns}{more}"
    columns = [f"`{c}`" for c in record["columns"].values() if c]
    return f"texts in the column{'s' if len(columns) > 1 else ''} {', '.join(columns)}"


def usage(record: dict, params: dict, commit: str | None) -> list[str]:
    """How to run the exported folder: the pipeline's predict, or transformers directly."""
    rows = {"causal_lm": "prompts.jsonl", "array": "images.npy"}.get(record["kind"], "rows.csv")
    where = f" (the distillery project at commit `{commit[:12]}`, `make setup`)" if commit else ""
    predict = [f"With the pipeline that made it{where}:", "", "```",
               f"python -m distillery.predict THIS_FOLDER {rows} predictions.csv", "```", ""]
    if record["kind"] == "causal_lm":
        prompted = record.get("prompt_column") or record.get("prompt_template") or record.get("messages_column")
        takes = ("It answers prompts written as its training prompts were (`inputs.json`: the prompt column or "
                 "template, conversations, the chat template and its end of turn); predict answers a file of them "
                 "greedily." if prompted else
                 f"It continues text (`inputs.json`: the corpus's column `{record.get('text_column')}`); predict "
                 "continues each text of a file greedily.")
        return [takes, "", *predict, "With `transformers` alone:", "", "```python",
                "from transformers import AutoModelForCausalLM, AutoTokenizer",
                "", "tokenizer = AutoTokenizer.from_pretrained(THIS_FOLDER)",
                "model = AutoModelForCausalLM.from_pretrained(THIS_FOLDER)", "```"]
    takes = f"It takes {inputs_text(record)}, and predicts one of {len(record['label_names'])} labels."
    if params["student"]["model"]["arch"] == "hf":
        return [takes, "With `transformers` alone:", "", "```python", "from transformers import pipeline", "",
                'classify = pipeline("text-classification", model=THIS_FOLDER)', "```", "", *predict]
    made = {"array": "pixels divided by their range and scaled as `inputs.json` records",
            "table": "categories one-hot coded and columns scaled with the statistics fitted on train, as "
                     "`inputs.json` records"}[record["kind"]]
    return [f"{takes} It needs its inputs made as prepare made them ({made}), which predict does.", "", *predict,
            "In your own code (the model's class is the pipeline's, so distillery must be installed):", "",
            "```python", "import torch", "from transformers import AutoModelForSequenceClassification", "",
            "import distillery.models.zoo  # registers the class", "from distillery.data.inputs import load_record, "
            "read_rows", "", "model = AutoModelForSequenceClassification.from_pretrained(THIS_FOLDER)",
            f'rows = read_rows(load_record(THIS_FOLDER), "{rows}")  # the inputs, made as prepare made them',
            "logits = model(features=torch.from_numpy(rows.inputs)).logits", "```"]


def reproduce(state: dict, kind: str, seed: int, level: str) -> list[str]:
    """The commit and params that make this model again, and whether another CPU gives the same bits."""
    folder = f"`models/students/{kind}/seed_{seed}`"
    bits = ("the same bits on any x86-64 CPU with AVX2 (`reproducible_cpu: avx2`)" if level == "avx2" else
            "the same bits on any x86-64 CPU (`reproducible_cpu: baseline`)" if level == "baseline" else
            "the same bits on a CPU like this one (`reproducible_cpu: native`)")
    md5 = (f" dvc.lock records the folder of all its seeds, `models/students/{kind}`, as `{state['students_md5']}`."
           if state["students_md5"] else "")
    if not state["commit"]:
        return [f"Made outside a git commit: the params are in `distillation.json`.{md5}"]
    commit, changes = state["commit"], state["params_changed"]
    if not changes:
        how = f"`git checkout {commit[:12]} && make repro` trains {folder}, these files, again, with {bits}."
    else:
        listed = "; ".join((f"`{k}` = {c['now']!r}" if "now" in c else f"`{k}` removed")
                           + f" ({repr(c['commit']) if 'commit' in c else 'absent'} there"
                           + ("" if c["written"] or "commit" not in c else ", its default") + ")"
                           for k, c in changes.items())
        args = set_args(changes)
        how = (f"Its params.yaml differs from the commit's: {listed} (an experiment, e.g. `dvc exp run`). "
               + (f"`git checkout {commit[:12]}`, then `dvc exp run {args}`, trains {folder}, these files, again, "
                  f"with {bits}." if args else "`distillation.json` holds the params it was trained with."))
    outside = [path for path, file in state["data_files"].items() if not file["in_commit"]]
    if outside:
        how = how.replace(", again,", ", again, given the same files (below),")
    lines = [f"Made at commit `{commit}`. {how}{md5}"]
    if state["data_files"]:
        lines += ["", "Data files and local checkpoints read (DVC does not watch a file params.yaml names; sha256 as "
                  "the stages read them, a folder's of its files): "
                  + "; ".join(f"`{path}`, {file['bytes']:,} bytes, sha256 `{file['sha256']}`"
                              + ("" if file["in_commit"] else ", **not in the commit** (outside the repo, or tracked "
                                                               "by neither git nor DVC)")
                              for path, file in state["data_files"].items()) + "."]
    if state["files_changed"]:
        lines += ["", "The workspace also had uncommitted changes to " + ", ".join(f"`{f}`" for f in
                                                                           state["files_changed"][:10])
                  + (f" and {len(state['files_changed']) - 10} more" if len(state["files_changed"]) > 10 else "")
                  + ": where they are code, the commit alone does not make these files."]
    return lines


LOCAL_LINK = re.compile(r"\[([^\]]+)\]\((?![a-z]+://)[^)]*\)")


def without_local_links(text: str) -> str:
    """Markdown links into the repository (``[docs/x.md](../docs/x.md)``) as their text: the card travels alone."""
    return LOCAL_LINK.sub(r"\1", text)


def render_card(params: dict, meta: dict, record: dict, metrics: dict, kind: str, seed: int, chosen: str,
                results: list[str], setting: str, state: dict, warnings: list[str] = ()) -> str:
    """The model card: metadata, what the model is (after the report's ``warnings`` that concern it), its results,
    how it was made, how to use and re-make it."""
    method = params["kd"]["method"]
    seeds = params["train"]["seeds"]
    if kind == "kd":
        made = (f"A student distilled with {describe(params['kd'])} ({get_method(method).paper}) from a teacher of "
                f"{metrics['teacher']['params']:,} parameters")
    else:
        made = ("The hard-label baseline: the students' architecture trained on the labels alone, against which the "
                f"distilled students (`{method}`) are compared")
    lines = [*_front_matter(meta, params), f"# A {KINDS[kind]} student of {metrics[kind]['params']:,} parameters", "",
             *(f"> **Warning.** {warning}\n" for warning in warnings),
             f"{made}, on `{meta.get('source', params['data']['source'])}`, by the distillery pipeline. It is seed "
             f"{seed} of the {len(seeds)} trained ({', '.join(map(str, seeds))}), {chosen}.", "",
             "## Results", "", *results, "", "## How it was made", "", setting, "", "## Use", "",
             *usage(record, params, state["commit"]), "", "## Reproduce", "",
             *reproduce(state, kind, seed, params["reproducible_cpu"])]
    return without_local_links("\n".join(lines) + "\n")


def export(out: Path, kind: str = "kd", seed: int | None = None) -> dict:
    """Copy ``models/students/KIND/seed_S`` to ``out`` with its model card and record; returns the record."""
    earlier = check_out(out)
    params = load_params()
    state = workspace_state(kind)
    meta_path = Path("data/prepared") / META_FILE
    if not meta_path.exists() or not Path("reports/metrics.json").exists():
        raise DistilleryError("no trained models here (data/prepared, reports/metrics.json): run `dvc repro` first")
    meta = json.loads(meta_path.read_text())
    metrics = json.loads(Path("reports/metrics.json").read_text())
    language_model = meta.get("kind") == "causal_lm"
    inputs = setting_inputs(params)
    selections = inputs["selections"]
    trained = [s["seed"] for s in selections[kind]]
    by_hand = seed is not None
    if by_hand and seed not in trained:
        raise DistilleryError(f"--seed {seed}: not among the trained seeds {trained}")
    if not by_hand:
        seed = pick_seed(selections[kind], language_model)
    selection = next(s for s in selections[kind] if s["seed"] == seed)
    key = "validation_nll" if language_model else "validation_accuracy"
    tied = [s["seed"] for s in selections[kind] if s["seed"] != seed and s[key] == selection[key]]
    chosen = ("chosen by hand (--seed)" if by_hand else
              f"the one with the best validation {'NLL per token' if language_model else 'accuracy'} at its "
              "checkpoint (never test)" + (f"; tied there with seed{'s' if len(tied) > 1 else ''} "
                                           f"{', '.join(map(str, tied))}, the lower seed was taken" if tied else ""))
    folder = Path(f"models/students/{kind}/seed_{seed}")
    if not folder.is_dir():
        raise DistilleryError(f"{folder}: not found: run `dvc repro` first")
    if language_model:
        scores = lm_seed_scores(metrics, kind, trained, seed)
        results = lm_results(metrics, kind, seed, scores)
        warnings = card_warnings(meta, metrics, None, kind, seed)
        setting = lm_setting_table(params, meta, metrics, selections)
    else:
        predictions = read_predictions(Path("reports/eval/predictions.csv"), meta["label_names"])
        scores = seed_scores(predictions, kind, seed)
        warnings = card_warnings(meta, metrics, predictions, kind, seed)
        results = classifier_results(metrics, meta, params["kd"]["method"], kind, seed, scores,
                                     selection["validation_accuracy"],
                                     budget_caveat(params["train"], selections, params["kd"]["method"]))
        setting = setting_table(params, meta, metrics, **inputs)
    files = sorted({p.name for p in folder.iterdir()} | {CARD_FILE, RECORD_FILE})
    record = {"kind": kind, "seed": seed, "chosen": "by hand" if by_hand else "validation", "selection": selection,
              "test": scores, **state, "files": files, "params": params, "metrics": metrics}
    card = render_card(params, meta, load_record(folder), metrics, kind, seed, chosen, results, setting, state,
                       warnings)
    with atomic_dir(out) as tmp:
        shutil.copytree(folder, tmp, dirs_exist_ok=True)
        write_text(tmp / CARD_FILE, card)
        write_json(tmp / RECORD_FILE, record)
        _modes_of_umask(tmp)
    return {**record, "replaced": earlier}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m distillery.export", description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path, help="the folder to write (new, empty, or an earlier export)")
    parser.add_argument("--kind", choices=tuple(KINDS), default="kd", help="distilled (kd) or hard-label students")
    parser.add_argument("--seed", type=int, help="the seed to export (default: the best on validation)")
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    with exit_on_error():
        record = export(args.out, args.kind, args.seed)
    earlier = record["replaced"]
    replaced = f", replacing the export of {earlier['kind']} seed {earlier['seed']}" if earlier else ""
    print(f"{args.out}: models/students/{args.kind}/seed_{record['seed']} ({record['chosen']}) with its model "
          f"card{replaced}")


if __name__ == "__main__":
    main()
