"""Students: one per seed, trained with a distillation method (the ``distill`` stage) or on hard
labels (``hard_baseline``, the method ``HARD``).

Both share the architecture, initial weights, data order and number of steps for a given seed;
only the loss (and what it needs) differs. So a method with ``kd.alpha = 0`` reproduces the hard
student exactly. What a method gets is what it declares (``Method.needs``): stored teacher logits
joined by id, a live teacher, intermediate outputs, trainable helpers, peers or generations.
"""
from __future__ import annotations

import functools
import logging
import shutil
from pathlib import Path

import numpy as np

from ..distributed import is_main
from ..errors import DistilleryError
from ..forking import cores, run_side_by_side
from ..io import atomic_dir, fingerprint, read_logits
from ..methods import HARD, Method
from ..models.zoo import build_model, check_model_fits
from ..data.inputs import input_record, save_record
from ..data.omitted import resolve as resolve_omitted, transfer_without_omitted, without_omitted
from ..data.prepared import Prepared
from .runs import CHECKPOINT_ROOT, CURVES, FINISHED_MODEL, copy_selection, data_key, keep_published, \
    run_conditions, save_timings, seeded, train_once, train_runtime, weights_fingerprint
from ..models.text import build_text_model, copy_teacher_layers, text_tokenizer

TEACHER_DIR = Path("models/teacher")
TEACHERS_LOGITS = Path("data/teachers")  # teachers.<name>: data/teachers/<name>/<split>.parquet
GENERATIONS = "generations"  # <students>/generations/<k>/seed_<s>/: every generation but the last (the student)
GENERATION_SEED_STEP = 1000  # generation k starts from the initial weights of seed + 1000·(k-1)
logger = logging.getLogger(__name__)


def seed_dir(root: Path, seed: int) -> Path:
    return Path(root) / f"seed_{seed}"


def seeds_in(root: Path) -> list[int]:
    """The seeds of the students saved under ``root`` (``seed_<s>`` directories), ascending."""
    seeds = sorted(int(p.name.removeprefix("seed_")) for p in Path(root).glob("seed_*") if p.is_dir())
    if not seeds:
        raise DistilleryError(f"{root}: no seed_<s> student directories (run the training stage first)")
    return seeds


def generations_root(root: Path, k: int) -> Path:
    """Where generation ``k`` (not the last) of the students under ``root`` is saved, one ``seed_<s>`` each."""
    return Path(root) / GENERATIONS / str(k)


def generation_logits(model_dir: Path, prepared: Prepared, batch_size: int) -> dict[str, np.ndarray]:
    """A finished generation's logits on train and validation, in the prepared rows' order (so joined by id):
    the next generation's targets."""
    from ..models.inference import split_logits
    from ..models.zoo import load_model
    from ..models.text import saved_tokenizer

    model, tokenizer = load_model(model_dir), saved_tokenizer(model_dir)
    return {name: split_logits(model, tokenizer, prepared.splits[name], batch_size, f"generation logits {name}",
                               f"student-{name}")
            for name in ("train", "validation")}


def load_teacher_logits(logits_dir: Path, prepared: Prepared, splits=("train", "validation"),
                        T: float = 1.0) -> dict[str, np.ndarray]:
    """Teacher logits for each split, joined to the prepared rows by id and checked (see ``read_logits``);
    top-k files (``teacher.logits_top_k``) rebuilt for a loss at temperature ``T``."""
    return {
        name: read_logits(Path(logits_dir) / f"{name}.parquet", prepared.splits[name].ids, prepared.num_labels, T)
        for name in splits
    }


def target_temperature(hp: dict) -> float | None:
    """The temperature stored top-k logits are rebuilt for: the method's ``T`` (1 for a method without one)."""
    return hp.get("T", 1.0)


def ensemble_logits(method: Method, hp: dict, prepared: Prepared, logits_dir: Path, teachers_root: Path,
                    names: list[str]) -> dict[str, np.ndarray]:
    """The targets of a method that combines several teachers: the teacher's and every ``teachers.<name>``'s
    stored logits (joined by id), stacked (N, K, C) and combined by ``method.combine`` with each teacher's
    validation accuracy."""
    T = target_temperature(hp)
    per_teacher = [load_teacher_logits(logits_dir, prepared, T=T)]
    per_teacher += [load_teacher_logits(Path(teachers_root) / name, prepared, T=T) for name in names]
    labels = prepared.splits["validation"].labels
    accuracies = np.array([(t["validation"].argmax(1) == labels).mean() for t in per_teacher])
    return {split: method.combine(np.stack([t[split] for t in per_teacher], axis=1), accuracies, hp)
            for split in ("train", "validation")}


def seed_processes(params: dict, seeds: int) -> int:
    """How many forked processes train the ``seeds`` students side by side (``compute.seed_processes``; each seed's
    run is the same whichever process trains it). ``auto``: one per core, at most one per seed, where forking is
    safe and pays: a CPU run in one process per stage (``compute.processes`` 1) whose torch runs one thread (a
    process forked after torch ran several threads hangs), else 1. A number asked for where it is not safe stops the
    stage before any training (the params' other rules are checked with the params: ``check_training``)."""
    import torch

    from ..models.inference import best_device

    setting = params["compute"]["seed_processes"]
    device = best_device().type
    safe = device == "cpu" and params["compute"]["processes"] == 1 and torch.get_num_threads() == 1
    if setting == "auto":
        return min(cores(), seeds) if safe else 1
    if setting > 1 and not safe:
        raise DistilleryError(
            f"compute.seed_processes = {setting}: forks CPU processes, and this run trains on {device} with "
            f"{torch.get_num_threads()} torch threads; set compute.seed_processes to auto or 1")
    return min(setting, seeds)


def train_students(
    method: Method,
    params: dict,
    prepared: Prepared,
    out_dir: Path,
    live_root: Path | None = None,
    logits_dir: Path | None = None,
    teacher_dir: Path = TEACHER_DIR,
    teachers_logits_root: Path = TEACHERS_LOGITS,
    transfer: tuple | None = None,
    keep_runs: bool = False,
) -> float | None:
    """Train one student per ``train.seeds`` with ``method``, save them under ``out_dir/seed_<s>/``
    (atomically, all or none) and return the Trainer's training time summed over seeds and generations (``nan`` when
    unknown: a run trained without curves; None in all but the main process of several); DVCLive curves under
    ``live_root/seed_<s>/`` when given (their timings under ``reports/timings/``, ``runs.save_timings``).

    Each seed trains in its own checkpoint directory (see ``train_once``), so a run killed in the
    middle resumes the interrupted seed and skips the seeds it had finished. With ``keep_runs`` (the stages) the
    finished runs are kept after publishing (``runs.keep_published``), so a re-run with more seeds trains the new ones
    only; else they are deleted. The method is checked against the models before any training. Text students
    tokenize with their own tokenizer; with ``init_from_teacher_layers`` they start from the teacher in
    ``teacher_dir``.

    A method that needs ``generations`` trains ``hp["generations"]`` students per seed, one after the other:
    generation 1 on the teacher's stored logits, from the hard student's initial weights; generation k on
    generation k-1's logits (``generation_logits``), from the initial weights of seed + 1000·(k-1), same data
    order. Each generation has its own run directory (the previous one's fingerprint and k), so a killed run
    resumes the right generation. The last generation is the seed's student; generation k < last is saved under
    ``generations_root(out_dir, k)`` (curves likewise under ``live_root``), where no stage looks for students.

    ``transfer`` (a transfer set and the teacher's logits on it, ``distillery.data.transfer.load_scored``): the students
    train on the labelled rows and the transfer rows, the latter labelled -100 (masked out of every method's
    hard-label term); ``data.transfer.labelled_repeats`` sets how often the labelled rows appear in the union.

    On a CPU the seeds train side by side in forked processes (``seed_processes``), each seed's run the same as
    alone. With several processes (``compute.processes``) every process trains and only the main one writes the
    outputs.
    """
    from .trainer import Distillee, TensorDictDataset, check_precision  # the Trainer: not for evaluate's imports

    check_precision(params["train"]["precision"], "train.precision")
    seeds = params["train"]["seeds"]
    processes = seed_processes(params, len(seeds))
    hp = method.hyperparams(params["kd"]) if method is not HARD else {}
    spec = params["student"]["model"]
    check_model_fits(spec, prepared.input_shape, "student.model")  # a CNN too deep for the images: before any work
    logits = {"train": None, "validation": None}
    run_parts: list = [method.name, hp]
    omitted = resolve_omitted(params["data"]["omit_classes"], prepared.label_names)
    if transfer is not None and "teachers" in method.needs:
        raise DistilleryError(f"kd.method = {method.name!r} with data.transfer: the teachers.<name> are not "
                              "scored on the transfer set; use one teacher")
    if "teacher_logits" in method.needs:
        logits = load_teacher_logits(logits_dir, prepared, T=target_temperature(hp))
    if "teachers" in method.needs:
        logits = ensemble_logits(method, hp, prepared, logits_dir, teachers_logits_root, list(params["teachers"]))
    if omitted:  # Hinton's omitted-class experiment: no student row of these classes (the logits joined first)
        kept = ~np.isin(prepared.splits["train"].labels, omitted)
        prepared = without_omitted(prepared, omitted)
        if logits["train"] is not None:
            logits = {**logits, "train": logits["train"][kept]}
        transfer = None if transfer is None else transfer_without_omitted(transfer, omitted)
    if transfer is not None:
        from ..data.transfer import union_logits, with_transfer

        rows, rows_logits = transfer
        repeats = params["data"]["transfer"]["labelled_repeats"]
        prepared = with_transfer(prepared, rows, repeats)
        if logits["train"] is not None:
            logits = {**logits, "train": union_logits(logits["train"], rows_logits, repeats)}
    train, val = prepared.splits["train"], prepared.splits["validation"]
    if logits["train"] is not None:
        run_parts += [logits["train"], logits["validation"]]
    if spec["arch"] == "hf":
        make_student, text = text_student(spec, prepared, teacher_dir)
        run_parts.append(text.pop("key"))
    else:
        make_student, text = (lambda: build_model(spec, prepared.input_shape, prepared.label_names,
                                                  "student.model")), {}
    teacher = prepare_teacher(method, hp, make_student, text.get("tokenizer"), teacher_dir)
    if teacher is not None and "live_teacher" in method.needs:
        run_parts.append(weights_fingerprint(teacher))
    live_teacher = teacher if "live_teacher" in method.needs else None

    def datasets(targets: dict) -> dict:
        """``train_once``'s ``train_data`` and ``eval_data`` with these target logits (None: labels only)."""
        if spec["arch"] != "hf":
            return {"train_data": TensorDictDataset.from_split(train, targets["train"]),
                    "eval_data": TensorDictDataset.from_split(val, targets["validation"])}
        from ..models.tokenization import tokenize, training_columns

        return {key: training_columns(tokenize(prepared.splits[name].dataset, text["tokenizer"], f"student-{name}"),
                                      targets[name], by_length=key == "eval_data")
                for key, name in (("train_data", "train"), ("eval_data", "validation"))}

    first_data = datasets(logits)
    generations = hp["generations"] if "generations" in method.needs else 1

    def make_model():
        student = with_attention_maps(make_student(), method)
        peers = [with_attention_maps(make_student(), method) for _ in range(hp.get("peers", 1))] \
            if "peers" in method.needs else []
        helpers = method.make_helpers(student, teacher, hp) if method.make_helpers else None
        return student if helpers is None and not peers else Distillee(student, helpers, peers)

    with_curves = live_root is not None
    conditions, inputs_key = run_conditions(params), data_key(prepared, train, val)

    def train_seed(seed: int) -> list[Path]:
        """Train the seed's student (each generation in turn) and return the run directory of each generation."""
        # {"model": ...}: the value params["student"] had before student.quantize, which only evaluate reads
        run_id = fingerprint({"model": params["student"]["model"]}, conditions, seed, inputs_key, with_curves,
                             *run_parts)
        run_dirs, data, make = [], first_data, make_model
        for k in range(1, generations + 1):
            if k > 1:
                data = datasets(generation_logits(run_dirs[-1] / FINISHED_MODEL, prepared,
                                                  params["teacher"]["inference_batch_size"]))
                run_id = fingerprint(run_id, "generation", k)
                make = _seeded_before(make_model, seed + GENERATION_SEED_STEP * (k - 1))
            run_dirs.append(CHECKPOINT_ROOT / method.name / run_id)
            train_once(run_dirs[-1], make, seed=seed, with_curves=with_curves, **data,
                       select=params["train"]["select"], train_params=params["train"], method=method, hyperparams=hp,
                       teacher=live_teacher, progress=f"seed {seed}" + (f", generation {k}" if generations > 1 else ""),
                       **text)
        return run_dirs

    if processes > 1:
        logger.info("training seeds %s side by side in %d processes (compute.seed_processes: %s)", seeds, processes,
                    params["compute"]["seed_processes"])
    runs = dict(zip(seeds, run_side_by_side([functools.partial(train_seed, seed) for seed in seeds], processes)))

    if not is_main():  # several processes: the main one writes the outputs and reports the time
        return None
    return publish_students(runs, out_dir, live_root, generations, keep_runs, input_record(prepared))


def publish_students(runs: dict[int, list[Path]], out_dir: Path, live_root: Path | None, generations: int,
                     keep_runs: bool, inputs: dict | None = None) -> float:
    """Copy finished runs (seed -> the run directory of each generation) to ``out_dir`` (atomically, all or none),
    each model with the record of its ``inputs`` (``data.inputs``), and their curves, selections and timings under
    ``live_root``; keep the runs for a re-run with more seeds (``keep_runs``: ``runs.keep_published``) or delete
    them, and return their summed training time (a run kept from before: the time it took then)."""
    with_curves = live_root is not None

    def place(tmp: Path, seed: int, k: int) -> Path:
        return seed_dir(tmp if k == generations else generations_root(tmp, k), seed)

    with atomic_dir(out_dir) as tmp:
        for seed, run_dirs in runs.items():
            for k, run_dir in enumerate(run_dirs, 1):
                shutil.copytree(run_dir / FINISHED_MODEL, place(tmp, seed, k))
                save_record(inputs, place(tmp, seed, k))
    if with_curves:
        with atomic_dir(live_root) as tmp:
            for seed, run_dirs in runs.items():
                for k, run_dir in enumerate(run_dirs, 1):
                    shutil.copytree(run_dir / CURVES, place(tmp, seed, k))
                    copy_selection(run_dir, place(tmp, seed, k))
                    save_timings(run_dir, place(live_root, seed, k))
    run_dirs = [run_dir for seed_runs in runs.values() for run_dir in seed_runs]
    seconds = sum(train_runtime(run_dir) for run_dir in run_dirs)
    if keep_runs:
        keep_published(run_dirs, out_dir)
    else:
        for run_dir in run_dirs:
            shutil.rmtree(run_dir)
    return seconds


def _seeded_before(make_model, init_seed: int):
    """``make_model`` building from ``seeded(init_seed)``: other initial weights, same data order (``train_once``
    still trains with the seed's ``TrainingArguments.seed``)."""
    def make():
        seeded(init_seed)
        return make_model()
    return make


def with_attention_maps(model, method: Method):
    """``model`` set to return attention maps when the method needs them (text models: the eager attention
    implementation only returns them); the student, its peers and the live teacher all go through it."""
    if "attentions" in method.needs and hasattr(model, "set_attn_implementation"):
        model.set_attn_implementation("eager")
    return model


def prepare_teacher(method: Method, hp: dict, make_student, student_tokenizer, teacher_dir: Path):
    """The teacher when the method runs it live or checks the models against it (eval mode, frozen), after
    ``method.check`` passed on a probe student; None when the method needs neither."""
    if "live_teacher" not in method.needs and method.check is None:
        return None
    from .teacher import load_teacher_and_tokenizer

    teacher = None
    if method.teacher_needed or method.check is not None:
        if not Path(teacher_dir).exists():
            raise DistilleryError(f"kd.method = {method.name!r} needs the teacher: {teacher_dir} not found "
                                  "(run the teacher stage)")
        teacher, teacher_tokenizer = load_teacher_and_tokenizer(teacher_dir)
        teacher = with_attention_maps(teacher, method).eval().requires_grad_(False)
        if "live_teacher" in method.needs and student_tokenizer is not None:
            from ..models.tokenization import tokenizer_key

            if teacher_tokenizer is None or tokenizer_key(teacher_tokenizer) != tokenizer_key(student_tokenizer):
                raise DistilleryError(
                    f"kd.method = {method.name!r} runs the teacher on the student's batches, so the student must "
                    "use the teacher's tokenizer: set student.model.tokenizer to the teacher's, or use "
                    "student.model.init_from_teacher_layers")
    if method.check is not None:
        seeded(0)
        problem = method.check(with_attention_maps(make_student(), method), teacher, hp)
        if problem:
            raise DistilleryError(f"kd.method = {method.name!r}: {problem}")
    return teacher


def text_student(spec: dict, prepared: Prepared, teacher_dir: Path):
    """``make_model`` for a text student and the text-only ``train_once`` arguments (its tokenizer and
    the padding collator), plus ``key``: what the run fingerprint needs beyond the params (the teacher
    the student copies layers from, or the embeddings it starts from: ``student.model.init_embeddings``)."""
    from ..models.zoo import load_model
    from .teacher import text_collator
    from ..models.text import saved_tokenizer
    from ..models.tokenization import tokenizer_key

    layers = spec["init_from_teacher_layers"]
    if not layers:
        tokenizer = text_tokenizer(spec, "student.model")
        embeddings = None
        if spec["init_embeddings"]:
            from transformers import AutoConfig

            from ..models.embeddings import load_projected

            config = dict(spec["config"])  # its width, without building the weights
            width = AutoConfig.for_model(config.pop("model_type"), **config).hidden_size
            embeddings = load_projected(spec["init_embeddings"], width, tokenizer, "student.model.init_embeddings")

        def make_model():
            model = build_text_model(spec, prepared.label_names, "student.model")[0]
            if embeddings is not None:
                from ..models.embeddings import copy_embeddings

                copy_embeddings(model, embeddings, "student.model.init_embeddings")
            return model

        key = None if embeddings is None else fingerprint(*embeddings.values())
    else:
        teacher = load_model(teacher_dir)
        tokenizer = saved_tokenizer(teacher_dir)
        if tokenizer is None:
            raise DistilleryError(f"student.model.init_from_teacher_layers: {teacher_dir} is not a text model")
        tokenizer.model_max_length = spec["max_length"]
        overrides = {**(spec["config"] or {}), "num_hidden_layers": len(layers)}
        if "model_type" in overrides and overrides["model_type"] != teacher.config.model_type:
            raise DistilleryError(f"student.model.config.model_type = {overrides['model_type']!r}: the teacher is "
                                  f"{teacher.config.model_type!r}; layers copy only between the same architecture")
        overrides.pop("model_type", None)
        if teacher.config.model_type == "distilbert":
            overrides["n_layers"] = overrides.pop("num_hidden_layers")
        student_spec = {**spec, "config": overrides, "tokenizer": str(teacher_dir)}

        def make_model():
            model, _ = build_text_model(student_spec, prepared.label_names, "student.model",
                                        base_config=teacher.config)
            copy_teacher_layers(model, teacher, layers, "student.model.init_from_teacher_layers")
            return model

        key = weights_fingerprint(teacher)
    return make_model, {"tokenizer": tokenizer, "data_collator": text_collator(tokenizer),
                        "key": [key, tokenizer_key(tokenizer)]}
