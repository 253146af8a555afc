"""``params.yaml``: the whole schema, assembled from the blocks each layer declares, checked at the start of every
stage before any heavy work.

Each block's schema lives next to what reads it: ``data`` in ``distillery/data/params.py``, the model blocks in
``distillery/models/params.py``, ``kd`` in the methods registry (each method declares its own ``kd.<name>``),
``cpu_threads``, ``compute``, ``teacher``, ``teachers``, ``student.model`` and ``train`` in
``distillery/training/params.py``, ``evaluate`` and ``student.quantize`` in ``distillery/evaluation/params.py``.
Here: the ``tune`` block (its space names params of every block), ``diff`` (read by ``make diff``), the rules that
span blocks, ``validate`` and ``load_params``. Unknown keys are rejected with a "did you mean" suggestion, and every
error names the param path and value. ``python -m distillery.params`` prints the whole schema with its defaults.
"""
from __future__ import annotations

from pathlib import Path

import yaml

from .data.chats import FROM_TOKENIZER
from .data.params import DATA, check_data, has_prompts, is_text, template_fields
from .errors import DistilleryError
from .evaluation.params import EVALUATE, QUANTIZE
from .methods import METHODS, check_method_params, get_method, kd_schema
from .numerics import DEFAULT_LEVEL, LEVELS
from .schema import INT, FLOAT, STR, Field, deep_merge, non_negative, one_of, positive, unflatten, validate_block
from .training.params import COMPUTE, CPU_THREADS, STUDENT_MODEL, TEACHER, TEACHERS, TRAIN, check_training, \
    teacher_blocks


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


TUNE = {  # the Optuna study of `make tune` (experiments/tune.py); no stage reads it
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

TASKS = ("classification", "causal_lm")

DIFF = {  # `make diff` and the pull-request comment (experiments/pr_report.py); no stage reads it
    "tolerance": Field(FLOAT, non_negative, 1.0e-6,
                       help="absolute: a metric whose |new - old| is at most this is 'same' (float noise)"),
}


SCHEMA: dict = {
    "preset": Field(STR, None, None, nullable=True, help="the preset params.yaml was written from"),
    "task": Field(STR, one_of(*TASKS), "classification",
                  help="classification: one label per row | causal_lm: next-token prediction on a text corpus, one "
                       "teacher distribution per token (docs/language-models.md)"),
    "reproducible_cpu": Field(STR, one_of(*LEVELS), DEFAULT_LEVEL,
                              help="the CPU kernels every stage runs: avx2 | baseline (same bits on any x86-64 CPU "
                                   "that runs them) | native (this CPU's own)"),
    "cpu_threads": CPU_THREADS,
    "compute": COMPUTE,
    "data": DATA,
    "teacher": TEACHER,
    "student": {"model": STUDENT_MODEL, "quantize": QUANTIZE},
    "train": TRAIN,
    "teachers": TEACHERS,
    "kd": kd_schema(),
    "evaluate": EVALUATE,
    "tune": TUNE,
    "diff": DIFF,
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
    check_training(params, source)
    check_data(params["data"], source)
    if params["task"] == "causal_lm":
        _check_causal_lm(params, source)
    else:
        _check_models(params, source)
        if has_prompts(params["data"]) or params["data"]["chat_template"]:
            raise DistilleryError(f"{source}: data.prompt_column / prompt_template / messages_column / chat_template "
                                  "set: prompts and responses are for language models (task: causal_lm); a "
                                  "classifier reads data.text_column (and data.text_pair_column)")
        if params["teacher"]["generate"]["sequences"] or "generated" in get_method(params["kd"]["method"]).needs:
            raise DistilleryError(f"{source}: teacher.generate and kd.method = 'seqkd' (the teacher's generated "
                                  "sequences) are for language models: task = 'causal_lm'")
    _check_arch_fields(raw or {}, params, source)
    _check_config_keys(params, source)
    _check_package_sources(params, source)
    transfer_on = any(params["data"]["transfer"][k] for k in ("rest", "source", "augment"))
    if params["kd"]["method"] == "multi_teacher" and transfer_on:
        raise DistilleryError(f"{source}: kd.method = 'multi_teacher' with data.transfer: the teachers.<name> are "
                              "not scored on the transfer set; use one teacher")
    check_method_params(params, source)
    _check_top_k(params, source)
    return params


ENTRY = (bool, int, float, str)  # an entry of a free mapping: student.model.config.num_hidden_layers


def param_field(path: str, where: str) -> Field:
    """The schema ``Field`` of a dotted param path such as ``kd.T``; an unknown path or a group is an error. A key
    inside a free mapping (``student.model.config.num_hidden_layers``: a Hugging Face config override) has no
    schema of its own: its Field takes any scalar (``ENTRY``), and the whole params check its value."""
    import difflib

    node: Field | dict = SCHEMA
    for depth, name in enumerate(path.split(".")):
        if isinstance(node, Field) and node.types == (dict,):
            return Field(ENTRY, help=f"an entry of the mapping {'.'.join(path.split('.')[:depth])}")
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
            if field.types not in (INT, FLOAT, ENTRY):
                raise DistilleryError(f"{where} = {spec!r}: a range needs a numeric param; use {{choices: [...]}}")
            if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (low, high)):
                raise DistilleryError(f"{where} = {spec!r}: the ends of a range must be numbers")
            integers = field.types == INT or (field.types == ENTRY and all(isinstance(v, int) for v in (low, high)))
            if not low < high:
                raise DistilleryError(f"{where} = {spec!r}: empty range (low must be < high)")
            if len(spec) == 3 and low <= 0:
                raise DistilleryError(f"{where} = {spec!r}: a log range needs low > 0")
            values = [low, high]
            space[path] = ("int" if integers else "float", low, high, len(spec) == 3)
        else:
            raise DistilleryError(f"{where} = {spec!r}: must be [low, high], [low, high, log] or {{choices: [...]}}")
        for value in values:
            try:
                _validate_pipeline(deep_merge(base, unflatten({path: value})), "@")
            except DistilleryError as exc:
                raise DistilleryError(f"{where}: {value!r} is not a valid value "
                                      f"({str(exc).removeprefix('@: ')})") from None
    return space


def _model_blocks(params: dict) -> list[tuple[str, dict]]:
    """(where, block) of the teacher, every ``teachers.<name>`` and the student: each holds a ``model`` block."""
    return [*teacher_blocks(params), ("student", params["student"])]


def _check_arch_fields(raw: dict, params: dict, source: str) -> None:
    """A model param that the model's ``arch`` does not read, set in params.yaml to other than its default, is
    refused, not ignored (``student.model.hidden_size`` is the CNN's dense width; an MLP's are ``hidden_sizes``).
    params.yaml lists every param, so a value at its default says nothing; a ``teachers.<name>`` is judged by its
    own overrides."""
    import difflib

    from .models.params import ARCH_FIELDS

    readers = {key: [arch for arch, keys in ARCH_FIELDS.items() if key in keys] for keys in ARCH_FIELDS.values()
               for key in keys}
    for where, block in _model_blocks(params):
        *_, name = where.split(".")
        given = ((raw.get("teachers") or {}).get(name) if where.startswith("teachers.") else raw.get(where)) or {}
        defaults, arch = SCHEMA["student" if where == "student" else "teacher"]["model"], block["model"]["arch"]
        for key, value in (given.get("model") or {}).items():
            if key in readers and arch not in readers[key] and value != defaults[key].default:
                close = difflib.get_close_matches(key, ARCH_FIELDS[arch], n=1)
                hint = f"; did you mean {where}.model.{close[0]}?" if close else ""
                raise DistilleryError(f"{source}: {where}.model.{key} = {value!r}: read by {' and '.join(readers[key])} "
                                      f"models only, and {where}.model.arch is {arch!r}{hint}")


def _check_config_keys(params: dict, source: str) -> None:
    """Every key of a Hugging Face model's ``config`` overrides is a setting of its config class (a typo would
    otherwise build a model of the default size), with a value the class accepts (``models.configs``)."""
    models = _model_blocks(params)
    if not any(block["model"]["arch"] == "hf" and block["model"]["config"] for _, block in models):
        return
    from .models.configs import check_config_overrides

    for role, block in models:
        if block["model"]["arch"] == "hf":
            try:
                check_config_overrides(block["model"], f"{role}.model")
            except DistilleryError as exc:
                raise DistilleryError(f"{source}: {exc}") from None


def _check_package_sources(params: dict, source: str) -> None:
    """Every checkpoint a model block or the data names that can be checked without a stage's outputs, here rather
    than when a later stage first loads it (a student's tokenizer: after the teacher has trained): a
    ``pypi:<package>/<folder>`` names an installed package with that folder (no import), a folder outside the
    repository (``/...``, ``../...``) exists, and ``~`` (which nothing expands) is refused. Folders under ``./``
    may be written by an earlier stage: their stage checks them."""
    from .data.checkpoints import PYPI_PREFIX, resolve_pretrained

    named = {"data.tokenizer": params["data"]["tokenizer"]}
    for role, block in _model_blocks(params):
        named[f"{role}.checkpoint"] = block.get("checkpoint")
        for key in ("pretrained", "tokenizer", "init_embeddings"):
            named[f"{role}.model.{key}"] = block["model"].get(key)
    for path, value in named.items():
        if isinstance(value, str) and value.startswith((PYPI_PREFIX, "/", "../", "~")):
            try:
                resolve_pretrained(value, path)
            except DistilleryError as exc:
                raise DistilleryError(f"{source}: {exc}") from None


def _check_top_k(params: dict, source: str) -> None:
    """``logits_top_k`` < the number of classes when data.label_names gives it (else the teacher_logits stage
    checks it on the prepared data, before running the teacher)."""
    from .logits_top_k import check_top_k

    names = params["data"]["label_names"]
    for where, teacher in teacher_blocks(params) if names else []:
        try:
            check_top_k(teacher["logits_top_k"], len(names), f"{where}.logits_top_k")
        except DistilleryError as exc:
            raise DistilleryError(f"{source}: {exc}") from None


def _check_sentence_column(data: dict, where: str) -> None:
    """``data.validation_split: sentences`` over a corpus splits one column's texts (``sentence_column``): refused
    for conversations and for a prompt template that reads several columns."""
    if data["messages_column"]:
        raise DistilleryError(f"{where}: data.validation_split = 'sentences' with data.messages_column: it splits "
                              "the texts of one column, not conversations; use 'rows'")
    fields = template_fields(data["prompt_template"]) if data["prompt_template"] else []
    if len(fields) > 1:
        raise DistilleryError(f"{where}: data.validation_split = 'sentences' with data.prompt_template reading "
                              f"{', '.join(map(repr, fields))}: it splits the texts of one column; use 'rows' or "
                              "a template of one column")


def _check_causal_lm(params: dict, source: str) -> None:
    """``task: causal_lm``: a text corpus, Hugging Face causal LMs (a checkpoint or a config with model_type) sharing
    the prepared tokenizer, and a method that reads only the teacher's stored per-token logits (or none)."""
    data = params["data"]
    where = f"{source}: task = 'causal_lm'"
    if not is_text(data):
        raise DistilleryError(f"{where} with data.source = {data['source']!r}: a language model learns from a text "
                              "source (hf:, file:, files without data.feature_columns)")
    transfer_on = any(data["transfer"][k] for k in ("rest", "source", "augment"))
    unsupported = {
        "data.transfer": transfer_on,
        "data.omit_classes": bool(data["omit_classes"]),
        "data.text_pair_column": bool(data["text_pair_column"]),
        "data.empty_text": data["empty_text"] != "refuse",
        "teachers": bool(params["teachers"]),
        "student.quantize": params["student"]["quantize"] != "none",
        "student.model.init_from_teacher_layers": bool(params["student"]["model"]["init_from_teacher_layers"]),
    }
    for name, used in unsupported.items():
        if used:
            raise DistilleryError(f"{where} with {name} set: not supported for language models; leave it at its "
                                  "default")
    for role, block in (("teacher", params["teacher"]), ("student", params["student"])):
        if block.get("checkpoint"):
            continue  # the checkpoint is the teacher: its model block is not read
        spec = block["model"]
        if spec["arch"] != "hf":
            raise DistilleryError(f"{where}: {role}.model.arch = {spec['arch']!r}: language models are Hugging Face "
                                  "models (arch: hf, with pretrained or config.model_type)")
        if not spec["pretrained"] and not (spec["config"] or {}).get("model_type"):
            raise DistilleryError(f"{where}: {role}.model: give pretrained (a checkpoint) or config with model_type "
                                  "(e.g. gpt2, llama: a model built from scratch)")
        if spec["tokenizer"]:
            raise DistilleryError(f"{where}: {role}.model.tokenizer = {spec['tokenizer']!r}: every model of a "
                                  "language-model run reads the tokens prepare wrote with data.tokenizer; set that")
    method = get_method(params["kd"]["method"])
    over_tokens = {"teacher_logits", "generated", "live_teacher", "student_samples"}
    if not method.needs <= over_tokens:
        usable = sorted(name for name, m in METHODS.items() if m.needs <= over_tokens)
        raise DistilleryError(f"{where}: kd.method = {method.name!r} needs "
                              f"{', '.join(sorted(method.needs - over_tokens))}, which a language model does not "
                              f"have; over tokens only the methods that read the teacher's logits (stored or live) "
                              f"or nothing run: {', '.join(usable)}")
    if data["prompt_column"] and data["prompt_template"]:
        raise DistilleryError(f"{where}: data.prompt_column and data.prompt_template both set: a prompt is one column "
                              "or made from the columns by the template; set one")
    if data["messages_column"] and (data["prompt_column"] or data["prompt_template"]):
        raise DistilleryError(f"{where}: data.messages_column with data.prompt_column / prompt_template: a "
                              "conversation holds its prompt (the messages before the last); set one")
    if data["validation_split"] == "sentences":
        _check_sentence_column(data, where)
    if data["messages_column"] and not data["chat_template"]:
        raise DistilleryError(f"{where}: data.messages_column = {data['messages_column']!r} without "
                              "data.chat_template: a conversation is written as text by a chat template; set "
                              f"{FROM_TOKENIZER!r} (data.tokenizer's own) or a Jinja template")
    if data["chat_turns"] != "last" and not data["messages_column"]:
        raise DistilleryError(f"{where}: data.chat_turns = {data['chat_turns']!r} without data.messages_column: "
                              "turns are the assistant messages of conversations")
    if data["chat_template"] and not has_prompts(data):
        raise DistilleryError(f"{where}: data.chat_template without prompts: it writes prompts and responses as a "
                              "chat; set data.prompt_column, data.prompt_template or data.messages_column")
    if data["chat_template"] == FROM_TOKENIZER and not data["tokenizer"]:
        raise DistilleryError(f"{where}: data.chat_template = {FROM_TOKENIZER!r} with data.tokenizer: null: the BPE "
                              "trained in prepare has no chat template; name a checkpoint in data.tokenizer or write "
                              "the template in data.chat_template")
    if has_prompts(data) and data["packing"] == "pack":
        raise DistilleryError(f"{where}: prompts (data.prompt_column / prompt_template / messages_column) with "
                              "data.packing = 'pack': packing joins rows, a prompt and its response stay one "
                              "sequence (packing: truncate)")
    if data["prompt_column"] and data["prompt_column"] == data["text_column"]:
        raise DistilleryError(f"{where}: data.prompt_column = data.text_column = {data['text_column']!r}: the prompt "
                              "and the response are two columns")
    top_k = params["teacher"]["logits_top_k"]
    if top_k is not None and data["tokenizer"] is None and top_k >= data["vocab_size"]:
        raise DistilleryError(f"{where}: teacher.logits_top_k = {top_k} is not below data.vocab_size = "
                              f"{data['vocab_size']} (the tokens of the BPE trained in prepare); null stores every logit")
    generate = params["teacher"]["generate"]
    if "generated" in method.needs and not generate["sequences"]:
        raise DistilleryError(f"{where}: kd.method = {method.name!r} trains on the teacher's generated sequences: set "
                              "teacher.generate.sequences (how many training prompts the teacher continues)")
    if generate["sequences"] and not has_prompts(data) and generate["prompt_tokens"] >= data["max_length"]:
        raise DistilleryError(f"{where}: teacher.generate.prompt_tokens = {generate['prompt_tokens']} leaves no room "
                              f"to generate within data.max_length = {data['max_length']}")


def _check_models(params: dict, source: str) -> None:
    """Models fit the data: text sources need Hugging Face models, arrays and tables MLP/CNN; each hf model has a
    checkpoint or a config, and a tokenizer."""
    data = params["data"]
    text = is_text(data)
    roles = {"teacher": params["teacher"], "student": params["student"],
             **{f"teachers.{name}": block for name, block in params["teachers"].items()}}
    for role, block in roles.items():
        if block.get("checkpoint"):
            continue  # the checkpoint is the teacher: its model block is not read
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
    if student["init_embeddings"] and (student["arch"] != "hf" or student["pretrained"]
                                       or student["init_from_teacher_layers"]):
        raise DistilleryError(f"{source}: student.model.init_embeddings starts the embeddings of a text student built "
                              "from a config (arch hf, config, tokenizer): not with pretrained or "
                              "init_from_teacher_layers, which bring their own")
    if params["teacher"]["model"]["arch"] == "hf" and not params["teacher"]["finetune"] \
            and not params["teacher"]["model"]["pretrained"] and not params["teacher"]["checkpoint"]:
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


def schema_text(schema: dict | None = None, indent: int = 0) -> str:
    """The schema as YAML-like lines: each param with its default, types and help."""
    lines = []
    for key, spec in (SCHEMA if schema is None else schema).items():
        pad = "  " * indent
        if isinstance(spec, dict):
            lines.append(f"{pad}{key}:")
            lines.append(schema_text(spec, indent + 1))
            continue
        default = yaml.safe_dump(spec.default, default_flow_style=True, width=1000).strip().removesuffix("...").strip()
        types = ("number" if spec.types == FLOAT else " | ".join(t.__name__ for t in spec.types)) + (" | null" if spec.nullable else "")
        note = f"  # {types}" + (f": {spec.help}" if spec.help else "")
        lines.append(f"{pad}{key}: {default}{note}")
    return "\n".join(lines)


if __name__ == "__main__":
    print(schema_text())
