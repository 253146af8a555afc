"""Tokenizing prepared text splits, each model with its own tokenizer, cached outside every DVC output.

``datasets.map`` on a split loaded from ``data/prepared`` would write its cache files into that DVC
output; the cache file is named explicitly under ``.cache/tokenized/`` instead, keyed by the tokenizer
(vocabulary, normalisation, ``model_max_length``) and the split's ids and texts. KD params are no part
of the key, so changing them re-uses the tokenized splits.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ..distributed import main_process_first
from ..io import fingerprint

TOKENIZED_ROOT = Path(".cache/tokenized")
TEXT_COLUMNS = ("text", "text_pair")


def tokenizer_key(tokenizer) -> str:
    """A hash of everything that decides a tokenizer's output."""
    if getattr(tokenizer, "is_fast", False):
        # truncation/padding: call settings the backend keeps from its last call, set again on every call
        body = {k: v for k, v in json.loads(tokenizer.backend_tokenizer.to_str()).items()
                if k not in ("truncation", "padding")}
    else:
        body = json.dumps(sorted(tokenizer.get_vocab().items()))
    return fingerprint(type(tokenizer).__name__, body, tokenizer.model_max_length, tokenizer.padding_side,
                       tokenizer.truncation_side, tokenizer.model_input_names)


def tokenize(dataset, tokenizer, name: str, cache_root: Path | None = TOKENIZED_ROOT):
    """``dataset`` (``id``, ``text``[, ``text_pair``], ``label``) tokenized without padding, truncated to
    ``tokenizer.model_max_length``: columns ``id``, ``labels`` and the tokenizer's model inputs. ``cache_root``
    None: in memory, no cache file (new rows for ``distillery.predict``)."""
    import datasets

    texts = [c for c in TEXT_COLUMNS if c in dataset.column_names]

    def encode(batch):
        return tokenizer(*[batch[c] for c in texts], truncation=True, max_length=tokenizer.model_max_length)

    datasets.disable_progress_bars()
    if cache_root is None:
        out = dataset.map(encode, batched=True, remove_columns=texts, keep_in_memory=True)
        return out.rename_column("label", "labels")
    content = fingerprint(np.asarray(list(dataset["id"])), *[list(dataset[c]) for c in texts])
    cache = Path(cache_root) / f"{name}-{fingerprint(tokenizer_key(tokenizer), content)}.arrow"
    cache.parent.mkdir(parents=True, exist_ok=True)
    with main_process_first():  # several processes: the main one writes the cache file, the others read it
        out = dataset.map(encode, batched=True, remove_columns=texts, cache_file_name=str(cache),
                          load_from_cache_file=True, desc=f"tokenizing {name}")
    return out.rename_column("label", "labels")


def training_columns(tokenized, teacher_logits: np.ndarray | None = None, by_length: bool = False):
    """The columns a model trains on (its inputs and ``labels``), plus ``teacher_logits`` when given (row order).

    ``by_length``: the rows sorted by token count, for evaluation, whose batches are each padded to their longest row
    (SST-2 in batches of 256: 3.9 times the real tokens in random order, 1.6 times sorted); metrics ignore the order.
    """
    out = tokenized.remove_columns(["id"])
    if teacher_logits is not None:
        out = out.add_column("teacher_logits", [row for row in teacher_logits.astype(np.float32)])
    if by_length:
        out = out.select(np.argsort([len(ids) for ids in out["input_ids"]], kind="stable"))
    return out
