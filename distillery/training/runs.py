"""The run lifecycle: where a training run keeps its checkpoints, how a killed run resumes, and
how its results are kept after the stage copies them to its outputs.

A run directory (under ``CHECKPOINT_ROOT``, outside every DVC output) is named by a
``fingerprint`` (``distillery.io``) of everything the training depends on, so a re-run after ``kill -9`` finds it,
and so does the next run with the same params and more ``train.seeds`` (``run_conditions``, ``keep_published``).
"""
from __future__ import annotations

import ast
import functools
import hashlib
import io
import json
import logging
import shutil
from pathlib import Path
from typing import Callable

import torch
from transformers import set_seed
from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR

from ..data.checkpoints import save_tokenizer
from ..io import SELECTION_FILE, TIMINGS_ROOT, atomic_dir, atomic_path, fingerprint, write_json

CHECKPOINT_ROOT = Path(".cache/checkpoints")
PACKAGE = Path(__file__).resolve().parents[1]  # distillery/
PUBLISHED = CHECKPOINT_ROOT / "published"  # per output directory: the runs last published to it, kept
DIGEST_CACHE = CHECKPOINT_ROOT / "source_digest.json"  # source_digest's last result and the files it read
TRAINER_STATE = "trainer_state.json"
STEP_SIGNAL = "DVCLIVE_STEP_COMPLETED"  # DVCLive's file for DVC's VS Code extension, one per workspace
FINISHED_MODEL, CURVES, TIMINGS, TRAINER_OUTPUT = "model", "live", "timings.json", "trainer"
TIMING_SUFFIXES = ("runtime", "samples_per_second", "steps_per_second")  # of the Trainer's log keys
CALL_LOSS = "train_loss"  # the Trainer's mean loss over the steps one call of train() trained
logger = logging.getLogger(__name__)


def is_timing(key: str) -> bool:
    """Whether a Trainer log key is a timing (``eval_runtime``, ``train_samples_per_second``, ...)."""
    return key.endswith(TIMING_SUFFIXES)


def of_this_call(key: str) -> bool:
    """Whether a Trainer log key describes one call of ``train()`` rather than the run: a timing, or ``train_loss``,
    the mean loss over the steps that call trained (a resumed run's leaves out the steps before the resume)."""
    return is_timing(key) or key == CALL_LOSS


def live_callback(run_dir: Path, resume_step: int | None):
    """DVCLive's Trainer callback, writing the curves under ``run_dir/live``, with rows keyed by the Trainer's
    global step; the timings the Trainer logs, and its mean loss of the call (``of_this_call``), go to
    ``run_dir/timings.json`` instead (``{step: {key: value}}``), so the curves hold the same bytes on every run with
    the same params, resumed or not.

    ``dvcyaml=None`` keeps DVCLive from touching ``dvc.yaml``; ``save_dvc_exp=False`` from making experiments.
    When resuming from the checkpoint at ``resume_step`` the curves logged up to it are kept and continued;
    rows logged after it (before the crash) are dropped, since the resumed run logs those steps again.
    """
    from dvclive import Live
    from transformers.integrations import DVCLiveCallback

    class CurvesLive(Live):
        def post_data_to_studio(self):
            """DVCLive gathers Studio's payload at every log call (parsing the run's params.yaml and every curve so
            far: half a small student's training time) even when no Studio is configured, then drops it."""
            if "data" not in self._studio_events_to_skip:
                super().post_data_to_studio()

        def log_params(self, params):
            """The Trainer's arguments but ``output_dir``: the run directory, named by the run's fingerprint, is where
            checkpoints go, not a setting, and the curves would change whenever what the fingerprint holds does."""
            super().log_params({key: value for key, value in params.items() if key != "output_dir"})

        def end(self):
            """DVCLive's last act is to remove the workspace's step signal for DVC's VS Code extension (one file,
            ``.dvc/tmp/exps/run/DVCLIVE_STEP_COMPLETED``), once it has seen it exists: seeds trained side by side
            end at about the same time, and another process's run can remove it in between. That race loses
            nothing; any other missing file is still an error."""
            try:
                super().end()
            except FileNotFoundError as exc:
                if Path(exc.filename or "").name != STEP_SIGNAL:
                    raise

    live_dir, timings_path = Path(run_dir) / CURVES, Path(run_dir) / TIMINGS
    timings = json.loads(timings_path.read_text()) if resume_step is not None and timings_path.exists() else {}
    timings = {step: row for step, row in timings.items() if int(step) <= (resume_step or 0)}

    class GlobalStepDVCLiveCallback(DVCLiveCallback):
        def on_log(self, args, state, control, model=None, logs=None, **kwargs):
            if self.live is not None:
                self.live.step = state.global_step  # the library counts log calls instead
            timed = {k: v for k, v in (logs or {}).items() if of_this_call(k)}
            if timed:
                timings.setdefault(str(state.global_step), {}).update(timed)
                write_json(timings_path, timings)
            logs = {k: v for k, v in (logs or {}).items() if not of_this_call(k)}
            super().on_log(args, state, control, model=model, logs=logs, **kwargs)

    if resume_step is not None:
        truncate_curves(live_dir, resume_step)
    live = CurvesLive(str(live_dir), dvcyaml=None, save_dvc_exp=False, report=None, resume=resume_step is not None)
    return GlobalStepDVCLiveCallback(live=live)


def selection_recorder(path: Path, metric: str = "accuracy"):
    """A Trainer callback that writes, when training ends, which checkpoint the model is: the rule (``best`` when
    the Trainer loads the best model at the end: the best validation ``metric`` (highest accuracy, lowest NLL), ties
    to the earlier step; else ``last``), the step, its validation ``metric`` and every evaluation (step -> value). A
    resumed run has the evaluations before the crash in its state."""
    from transformers import TrainerCallback

    key = f"eval_{metric}"

    class SelectionRecorder(TrainerCallback):
        def on_train_end(self, args, state, control, **kwargs):
            rule = "best" if args.load_best_model_at_end else "last"
            evaluations = {entry["step"]: entry[key] for entry in state.log_history if key in entry}
            step = state.best_global_step if rule == "best" and state.best_global_step else state.global_step
            write_json(path, {"rule": rule, "step": step, f"validation_{metric}": evaluations.get(step),
                              "last_step": state.global_step,
                              "evaluations": {str(s): a for s, a in sorted(evaluations.items())}})

    return SelectionRecorder()


def copy_selection(run_dir: Path, curves_dir: Path) -> None:
    """A run's ``selection.json`` beside its curves (``reports/training/kd/seed_0/selection.json``)."""
    shutil.copyfile(Path(run_dir) / SELECTION_FILE, Path(curves_dir) / SELECTION_FILE)


def save_timings(run_dir: Path, curves_dir: Path) -> None:
    """Copy a run's timings to where the curves at ``curves_dir`` have theirs: ``reports/training/kd/seed_0`` ->
    ``reports/timings/training/kd/seed_0.json``; curves outside ``reports/`` get them beside, in
    ``<curves_dir>.timings.json``. Nothing when the run logged none."""
    source, curves_dir = Path(run_dir) / TIMINGS, Path(curves_dir)
    if not source.exists():
        return
    if curves_dir.parts[:1] == ("reports",):
        target = TIMINGS_ROOT / curves_dir.relative_to("reports").with_suffix(".json")
    else:
        target = curves_dir.with_name(f"{curves_dir.name}.timings.json")
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(source, target)


def train_runtime(run_dir: Path) -> float:
    """The Trainer's ``train_runtime`` of the run in ``run_dir`` in seconds (``nan`` when it logged none)."""
    path = Path(run_dir) / TIMINGS
    rows = json.loads(path.read_text()).values() if path.exists() else []
    return next((row["train_runtime"] for row in rows if "train_runtime" in row), float("nan"))


def truncate_curves(live_dir: Path, last_step: int) -> None:
    """Drop the rows with ``step > last_step`` from every DVCLive metric file under ``live_dir``, and what a kill
    can leave half-written there (DVCLive writes in place): a metric file's last line without its end (a file
    without one whole line is removed), and a summary (``metrics.json``) or params file that does not parse, which
    DVCLive would refuse to resume from (it writes both again at the run's next log)."""
    import pandas as pd
    import yaml

    for tsv in Path(live_dir).glob("plots/metrics/**/*.tsv"):
        text = tsv.read_text()
        whole = text if text.endswith("\n") else text[:text.rfind("\n") + 1]
        if not whole:  # not even its header line
            tsv.unlink()
            continue
        table = pd.read_csv(io.StringIO(whole), sep="\t")
        kept = table[table["step"] <= last_step]
        if len(kept) < len(table) or whole != text:
            with atomic_path(tsv) as tmp:
                kept.to_csv(tmp, sep="\t", index=False)
    for name, parse in (("metrics.json", json.loads), ("params.yaml", yaml.safe_load)):
        path = Path(live_dir) / name
        try:
            whole = path.exists() and isinstance(parse(path.read_text()), dict)
        except (ValueError, yaml.YAMLError):
            whole = False
        if path.exists() and not whole:
            logger.info("removing %s, half-written when the run was killed", path)
            path.unlink()


def last_complete_checkpoint(checkpoint_dir: Path) -> Path | None:
    """The newest ``checkpoint-<step>`` under ``checkpoint_dir`` that was saved completely, else None.

    The Trainer writes ``trainer_state.json`` last and not atomically, so a checkpoint killed while
    being saved lacks it or holds broken JSON; such checkpoints are deleted.
    """
    if not Path(checkpoint_dir).is_dir():
        return None
    candidates = []
    for path in Path(checkpoint_dir).glob(f"{PREFIX_CHECKPOINT_DIR}-*"):
        step = path.name.removeprefix(f"{PREFIX_CHECKPOINT_DIR}-")
        if path.is_dir() and step.isdigit():
            candidates.append((int(step), path))
    for step, path in sorted(candidates, reverse=True):
        try:
            saved_step = json.loads((path / TRAINER_STATE).read_text())["global_step"]
        except (OSError, ValueError, KeyError):
            saved_step = None
        if saved_step == step:
            return path
        logger.warning("ignoring the incomplete checkpoint %s (interrupted while being saved)", path)
        shutil.rmtree(path)
    return None


def checkpoint_step(checkpoint: Path) -> int:
    return json.loads((Path(checkpoint) / TRAINER_STATE).read_text())["global_step"]


@functools.cache
def source_digest(root: Path = PACKAGE, cache: Path | None = DIGEST_CACHE) -> str:
    """A digest of the code of the Python files under ``root`` (this package): a kept run is reused by the code that
    trained it only, so a fix to a loss or to the Trainer's use retrains the students even when their params stay
    the same. The code is each file's syntax tree without its docstrings: comments, docstrings, blank lines and
    formatting change no result, so editing them keeps the runs.

    Parsing the package costs each training stage about 0.3 s on two CPU cores: the digest is kept in ``cache``
    with the size and modification time of every file it read, and parsed again only when one of them differs (an
    edit, a checkout) or a file comes or goes."""
    files = sorted(Path(root).rglob("*.py"))
    stats = [path.stat() for path in files]
    stamps = [[str(path.relative_to(root)), stat.st_size, stat.st_mtime_ns] for path, stat in zip(files, stats)]
    key = {"root": str(Path(root).resolve()), "files": stamps}
    try:
        saved = json.loads(Path(cache).read_text()) if cache is not None else None
    except (OSError, ValueError):  # none yet, or cut short by a kill: computed again
        saved = None
    if isinstance(saved, dict) and saved.get("key") == key:
        return saved["digest"]
    sha = hashlib.sha256()
    for path in files:
        code = ast.dump(without_docstrings(ast.parse(path.read_bytes(), filename=str(path))))
        sha.update(str(path.relative_to(root)).encode() + b"\0" + code.encode() + b"\0")
    digest = sha.hexdigest()[:16]
    if cache is not None:
        try:
            write_json(cache, {"key": key, "digest": digest})
        except OSError:  # another process writing it at the same time (compute.processes > 1) removed our temporary
            pass
    return digest


DOCUMENTED = (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)  # what ast.get_docstring reads


def without_docstrings(tree: ast.AST) -> ast.AST:
    """``tree`` with the docstring of its module, classes and functions removed (in place)."""
    for node in ast.walk(tree):
        if isinstance(node, DOCUMENTED) and ast.get_docstring(node, clean=False) is not None:
            node.body = node.body[1:]
    return tree


def run_environment(params: dict) -> dict:
    """What changes the bits of the same computation, for a run's fingerprint: the code (``source_digest`` and the
    versions of transformers and accelerate), the CPU numerics in force (``numerics.record``: the pinned level and
    variables, torch's kernels, threads and version), ``cpu_threads``, the number of processes and the device; and
    the contents of the local checkpoints params name (``checkpoint_digests``), where there are any: a checkpoint
    replaced at the same path is another run."""
    import accelerate
    import transformers

    from .. import distributed
    from ..data.sources import checkpoint_digests
    from ..numerics import record

    checkpoints = checkpoint_digests(params)
    return {"code": source_digest(), "transformers": transformers.__version__, "accelerate": accelerate.__version__,
            "numerics": record(params.get("reproducible_cpu")), "cpu_threads": params.get("cpu_threads"),
            "processes": distributed.processes(),
            "device": torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu",
            **({"checkpoints": checkpoints} if checkpoints else {})}


def run_conditions(params: dict) -> dict:
    """What one student seed's run depends on besides the model, the data and the method: the ``train`` params but
    ``seeds`` (so a seed's run, and its fingerprint, is the same whatever other seeds the list holds) and
    ``run_environment``."""
    return {"train": {key: value for key, value in params["train"].items() if key != "seeds"},
            **run_environment(params)}


def data_key(prepared, *splits) -> str:
    """What a run's fingerprint takes of its data: the label names and input shape, and each split's ids, labels
    and inputs (the arrays with their dtype and shape, or a text split's text columns). Another scaling, feature
    column, class list or text is another run, never a run trained on other inputs reused or resumed."""
    from ..models.tokenization import TEXT_COLUMNS

    parts = [list(prepared.label_names), list(prepared.input_shape)]
    for split in splits:
        parts += [split.ids, split.labels]
        if split.inputs is not None:
            parts += [str(split.inputs.dtype), list(split.inputs.shape), split.inputs]
        if split.dataset is not None:
            parts += [list(split.dataset[c]) for c in TEXT_COLUMNS if c in split.dataset.column_names]
    return fingerprint(*parts)


def keep_published(run_dirs: list[Path], out_dir: Path) -> None:
    """Keep the finished runs just published to ``out_dir`` (their models, curves, selections and timings; the
    Trainer's checkpoints are gone) and delete those kept from its previous publish that are not among them: a
    stage re-run with the same params and more ``train.seeds`` then trains the new seeds only, and the runs kept
    take about the room of one copy of each output. The list lives in ``PUBLISHED``."""
    manifest = PUBLISHED / f"{str(out_dir).strip('/').replace('/', '__')}.json"
    kept = [str(run_dir) for run_dir in run_dirs]
    previous = json.loads(manifest.read_text()) if manifest.exists() else []
    for stale in sorted(set(previous) - set(kept)):
        shutil.rmtree(stale, ignore_errors=True)
    write_json(manifest, kept)


def weights_fingerprint(model) -> str:
    """``fingerprint`` of a model's weights, their bytes in ``state_dict`` order (any dtype: bf16 has no NumPy type):
    a run that reads a model (a live teacher, copied layers) is named by it."""
    return fingerprint(*(v.reshape(-1).view(torch.uint8).numpy() for v in model.state_dict().values()))


def seeded(seed: int) -> None:
    """Seed Python, NumPy and torch before building a model, so its initial weights depend on the seed only."""
    set_seed(seed)


def train_once(
    run_dir: Path,
    make_model: Callable[[], object],
    seed: int,
    with_curves: bool,
    tokenizer=None,
    **train_kwargs,
) -> Path:
    """Train one model in ``run_dir`` and return the directory of the finished model (``run_dir/model``).

    ``run_dir`` holds the Trainer's checkpoints, the DVCLive curves (``run_dir/live``), the timings
    (``run_dir/timings.json``), which checkpoint the model is (``run_dir/selection.json``: ``train_model``'s
    ``select``; early stopping always selects the best) and, once training ends, the saved model (the checkpoints
    deleted). A run killed part-way resumes from its last checkpoint; a model finished before (by a run killed
    later, e.g. during the next seed, or kept by ``keep_published``) is reused as is. ``make_model``
    returns the model to train: a ``PreTrainedModel``, or a ``training.Distillee`` whose student is
    saved. The caller copies the results to its outputs. With several processes
    (``compute.processes``) every process trains and the main one writes; all return once the model is saved.
    """
    from .. import distributed
    from .trainer import Distillee, train_model

    finished = Path(run_dir) / FINISHED_MODEL
    checkpoint_dir = Path(run_dir) / TRAINER_OUTPUT
    with distributed.main_process_first():  # the main process deletes broken checkpoints before the others look
        if finished.is_dir():
            logger.info("reusing %s, trained before with the same params", finished)
            return finished
        resume = last_complete_checkpoint(checkpoint_dir)
    resume_step = None if resume is None else checkpoint_step(resume)
    if resume is not None:
        logger.info("resuming from %s: step %d of %d", resume, resume_step, train_kwargs["train_params"]["max_steps"])
    main = distributed.is_main()  # several processes: only the main one writes curves, checkpoints and the model
    callbacks = [live_callback(Path(run_dir), resume_step)] if with_curves and main else []
    if main:
        callbacks.append(selection_recorder(Path(run_dir) / SELECTION_FILE, train_kwargs.get("metric", "accuracy")))
    seeded(seed)
    model = train_model(make_model(), seed=seed, checkpoint_dir=checkpoint_dir, resume_from=resume,
                        callbacks=callbacks, tokenizer=tokenizer, **train_kwargs)
    if main:
        shutil.rmtree(checkpoint_dir, ignore_errors=True)
        if isinstance(model, Distillee):
            model = model.student
        with atomic_dir(finished) as tmp:
            model.save_pretrained(tmp)
            if tokenizer is not None:  # text models: saved together, so every later stage tokenizes alike
                save_tokenizer(tokenizer, tmp)
    distributed.barrier()
    return finished
