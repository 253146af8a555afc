"""``python -m distillery.predict MODEL INPUT OUTPUT``: a model the pipeline trained, on new rows.

MODEL is a model directory the pipeline wrote: the teacher (``models/teacher``; with ``teacher.checkpoint``, the
checkpoint it names) or a student (``models/students/kd/seed_0``): its safetensors weights, its config (the label
names), its tokenizer (text and language models), and ``inputs.json``, the record of how its source's rows became
its inputs (``distillery.data.inputs``). INPUT is a file of new rows in its source's form: a CSV/TSV/JSON
Lines/Parquet table with the model's feature, text, prompt or conversation columns, or for array models (images) a
``.npy`` or ``.npz`` array of the source's shape and value range, or image files (``data.image_files``). They are turned into inputs by the same code and
statistics as ``prepare`` (scaling fitted on train, one-hot categories, pixel range, the prompt and chat templates,
the model's tokenizer), checked before the model runs, and run under the same CPU numerics as the stages (the
project's ``reproducible_cpu`` and ``cpu_threads``), so a row of the source gives what evaluate gave it. OUTPUT
(``.csv``, ``.tsv``, ``.jsonl`` or ``.parquet``, written atomically) has a row per input row: its ``id``, and for a
classifier the predicted ``label``, its ``probability`` and each label's probability (``--scores logits``: the raw
logits instead); for a language model its greedy ``answer`` (and the ``reference`` the file gives).
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from pathlib import Path

import numpy as np

from .cli import quiet_torchao
from .errors import DistilleryError, exit_on_error
from .numerics import DEFAULT_LEVEL, LEVELS, environment, level_in, pin, with_pinned

WRITERS = {".csv": "csv", ".tsv": "tsv", ".jsonl": "json", ".parquet": "parquet"}
PARAMS_FILE = Path("params.yaml")
PINNED_MARK = "DISTILLERY_PREDICT_PINNED"  # set in the re-started process, so it starts once only


def predict(model_dir: Path, input_path: Path, array: str | None = None, batch_size: int = 512,
            device: str | None = None, int8: bool = False,
            pixels_as_given: bool = False) -> tuple[np.ndarray, np.ndarray, list[str], list[str] | None]:
    """The rows of ``input_path`` through the model in ``model_dir``: (ids, float32 logits (N, labels), label
    names, each row's image file where the input is image files). Every row is read and checked before the model loads. ``int8``: the model quantized as evaluate scores
    ``student.quantize: int8`` (``evaluation.quantization``; on CPU). ``pixels_as_given``: images whose pixels all
    lie within 0..1, for a model of 0..255 (or 0..16) pixels, taken as they are instead of refused."""
    from .data.inputs import load_record, read_rows
    from .training.teacher import load_teacher_and_tokenizer

    model_dir = Path(model_dir)
    record = load_record(model_dir)
    if pixels_as_given and record.get("pixel_max") is None:
        raise DistilleryError(f"--pixels-as-given: for models of image pixels (0..255, 0..16); {model_dir} takes "
                              f"{'images of other values' if record['kind'] == 'array' else record['kind'] + ' rows'}")
    rows = read_rows(record, input_path, array, pixels_as_given)
    model, tokenizer = load_teacher_and_tokenizer(model_dir)  # a saved model, or the teacher.checkpoint it names
    names = record["label_names"]
    if model.config.num_labels != len(names):
        raise DistilleryError(f"{model_dir}: the model has {model.config.num_labels} labels but its inputs.json "
                              f"names {len(names)}")
    import torch

    from .models.inference import best_device, predict_logits, predict_text_logits

    where = torch.device(device) if device else best_device()
    if int8:
        from .evaluation.quantization import quantize_int8

        if where.type != "cpu":
            raise DistilleryError(f"--int8: int8 models run on CPU (as evaluate scores them), not --device {device}")
        model = quantize_int8(model)
    if rows.dataset is None:
        return rows.ids, predict_logits(model, rows.inputs, batch_size, "predict", where), names, rows.files
    from .models.tokenization import tokenize

    if tokenizer is None:
        raise DistilleryError(f"{model_dir}: a text model without its tokenizer (tokenizer_config.json)")
    tokenized = tokenize(rows.dataset, tokenizer, "predict", cache_root=None)
    return rows.ids, predict_text_logits(model, tokenizer, tokenized, batch_size, "predict", device=where), names, None


def answer(model_dir: Path, input_path: Path, batch_size: int = 512, device: str | None = None):
    """A language model's greedy answers to the prompts of ``input_path``, each up to its end-of-text token or
    ``data.max_length`` tokens in all, cut at a chat template's end of turn, as evaluate answers test prompts: a
    DataFrame of ``id``, ``answer`` and the ``reference`` where the file gives one. Every prompt is read and
    checked before the model loads."""
    import pandas as pd
    import torch

    from .data.checkpoints import checkpoint_tokenizer
    from .data.inputs import load_record, read_prompts
    from .evaluation.causal_lm import responses
    from .models.causal_lm import load_causal_lm
    from .models.inference import best_device
    from .training.causal_lm import lm_teacher_source

    record = load_record(model_dir)
    source, trust = lm_teacher_source(Path(model_dir))  # a saved model, or the teacher.checkpoint it names
    tokenizer = checkpoint_tokenizer(source, trust, where=str(model_dir))
    if tokenizer.pad_token_id is None:  # as prepare set it (data.corpus)
        tokenizer.pad_token = tokenizer.eos_token
    prompts = read_prompts(record, input_path, tokenizer)
    where = torch.device(device) if device else best_device()
    model = load_causal_lm(source, trust).to(where)
    offsets = np.concatenate([[0], np.cumsum(prompts.lengths)])
    answers = responses({"answer": model}, (prompts.tokens, offsets, prompts.lengths), tokenizer, len(prompts.ids),
                        record["max_length"], batch_size, where, record["end_of_turn"])
    table = {"id": prompts.ids, "answer": answers["answer"]}
    if any(reference is not None for reference in prompts.references):
        table["reference"] = prompts.references
    return pd.DataFrame(table)


def predictions_table(ids: np.ndarray, logits: np.ndarray, names: list[str], scores: str = "probabilities",
                      files: list[str] | None = None):
    """A DataFrame: ``id`` (and the image ``file`` of each row, where given), the predicted ``label`` (the first of
    tied logits), its ``probability`` (softmax), then a column per label: ``p_<label>`` (probabilities) or
    ``logit_<label>`` (``scores="logits"``)."""
    import pandas as pd

    from .evaluation.metrics import probabilities as softmax

    probabilities = softmax(logits)
    best = logits.argmax(axis=1)
    table = {"id": ids, **({"file": files} if files is not None else {}), "label": np.asarray(names, dtype=object)[best],
             "probability": probabilities[np.arange(len(ids)), best]}
    per_label = probabilities if scores == "probabilities" else logits
    prefix = "p_" if scores == "probabilities" else "logit_"
    table.update({f"{prefix}{name}": per_label[:, i] for i, name in enumerate(names)})
    return pd.DataFrame(table)


def output_kind(path: Path) -> str:
    """How ``path`` is written, from its suffix; an error before any work for another one."""
    kind = WRITERS.get(Path(path).suffix.lower())
    if kind is None:
        raise DistilleryError(f"{path}: the output must end in {', '.join(WRITERS)}")
    return kind


def _missing(value) -> bool:
    """A float NaN (pandas' missing cell) or pandas' NA."""
    import math

    import pandas as pd

    return (isinstance(value, float) and math.isnan(value)) or value is pd.NA


def write_table(table, path: Path) -> None:
    """``table`` to ``path`` atomically, in the format of its suffix."""
    from .io import atomic_path

    kind = output_kind(path)
    with atomic_path(path) as tmp:
        if kind in ("csv", "tsv"):
            table.to_csv(tmp, sep="\t" if kind == "tsv" else ",", index=False)
        elif kind == "json":  # Python's float repr: every value exactly (pandas' to_json rounds to 10 digits)
            with open(tmp, "w") as f:
                for row in table.to_dict("records"):  # a missing value (NaN, e.g. no reference) as null: JSON has
                    f.write(json.dumps({k: None if _missing(v) else v for k, v in row.items()},  # no NaN
                                       allow_nan=False) + "\n")
        else:
            table.to_parquet(tmp, index=False)


def check_device(device: str | None) -> None:
    """``--device`` names a device torch has here (None: the best there is), else an error naming it."""
    import torch

    if device is None:
        return
    try:
        kind = torch.device(device).type
    except RuntimeError as exc:
        raise DistilleryError(f"--device {device}: {exc}") from None
    available = {"cpu": True, "cuda": torch.cuda.is_available(), "mps": torch.backends.mps.is_available()}
    if not available.get(kind, False):
        raise DistilleryError(f"--device {device}: no {kind} device here (this torch: {torch.__version__}; devices: "
                              f"{', '.join(name for name, present in available.items() if present)})")
    if kind == "cuda" and torch.device(device).index is not None \
            and torch.device(device).index >= torch.cuda.device_count():
        raise DistilleryError(f"--device {device}: this machine has {torch.cuda.device_count()} CUDA devices")


def project_numerics(params_file: Path = PARAMS_FILE) -> tuple[str, int]:
    """``reproducible_cpu`` and ``cpu_threads`` of the project's params.yaml in this folder (the numerics evaluate
    ran under), or the defaults (``avx2``, one thread) outside a project."""
    if not params_file.exists():
        return DEFAULT_LEVEL, 1
    import yaml

    threads = (yaml.safe_load(params_file.read_text()) or {}).get("cpu_threads", 1)
    return level_in(params_file), threads


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(prog="python -m distillery.predict", description=__doc__.splitlines()[0])
    parser.add_argument("model", type=Path, help="a model directory: models/teacher, models/students/kd/seed_0, ...")
    parser.add_argument("input", type=Path, help="new rows: .csv .tsv .jsonl .parquet; .npy .npz for arrays; image "
                                                 "files (.png .jpg ...) or a folder of them for image models")
    parser.add_argument("output", type=Path, help="predictions: .csv .tsv .jsonl or .parquet")
    parser.add_argument("--array", help=".npz input: the array of inputs (default: its only one besides 'id')")
    parser.add_argument("--scores", choices=("probabilities", "logits"),
                        help="classifiers: each label's probability (default) or raw logit")
    parser.add_argument("--int8", action="store_true",
                        help="classifiers: int8 Linear layers, as evaluate scores student.quantize: int8 (CPU)")
    parser.add_argument("--pixels-as-given", action="store_true",
                        help="images: pixels that all lie within 0..1 for a model of 0..255 (or 0..16) pixels are "
                             "refused (divided already?); take them as they are")
    parser.add_argument("--batch-size", type=int, default=512, help="rows per forward pass or generation batch")
    parser.add_argument("--device", help="cpu, cuda, cuda:1, mps, ... (default: CUDA, else MPS, else CPU)")
    parser.add_argument("--reproducible-cpu", choices=tuple(LEVELS),
                        help="CPU numerics (default: params.yaml's reproducible_cpu here, else avx2)")
    parser.add_argument("--threads", type=int,
                        help="torch CPU threads, 0: one per core (default: params.yaml's cpu_threads, else 1)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    quiet_torchao()
    with exit_on_error():
        level, threads = project_numerics()
        level, threads = args.reproducible_cpu or level, threads if args.threads is None else args.threads
        if args.batch_size < 1:
            raise DistilleryError(f"--batch-size {args.batch_size}: must be >= 1")
        if threads < 0:
            raise DistilleryError(f"--threads {threads}: must be >= 0 (0: one per core)")
        output_kind(args.output)
        if os.environ.get(PINNED_MARK) != level:  # start again with the numerics every library reads on loading
            environ = {**with_pinned(os.environ, environment(level)), PINNED_MARK: level}
            os.execve(sys.executable, [sys.executable, "-m", "distillery.predict", *argv], environ)
        import torch

        from .data.inputs import load_record

        pin(level)
        if threads:
            torch.set_num_threads(threads)
        check_device(args.device)
        if load_record(args.model)["kind"] == "causal_lm":
            if args.array or args.scores or args.int8 or args.pixels_as_given:
                raise DistilleryError(f"{args.model}: a language model answers prompts: --array, --scores, --int8 "
                                      "and --pixels-as-given are for classifiers")
            table = answer(args.model, args.input, args.batch_size, args.device)
        else:
            ids, logits, names, files = predict(args.model, args.input, args.array, args.batch_size, args.device,
                                                args.int8, args.pixels_as_given)
            table = predictions_table(ids, logits, names, args.scores or "probabilities", files)
        write_table(table, args.output)
    print(f"{args.output}: {len(table):,} rows predicted by {args.model}")


if __name__ == "__main__":
    main()
