"""Offline text fixtures: synthetic labelled sentences, WordPiece tokenizers built from them, and tiny
random-init BERT / DistilBERT checkpoints saved like Hub models (safetensors + tokenizer)."""
from __future__ import annotations

import random
from pathlib import Path

import pandas as pd

POSITIVE = ["great", "lovely", "superb", "moving", "funny", "warm", "clever", "bright"]
NEGATIVE = ["dull", "awful", "boring", "flat", "tedious", "weak", "messy", "bland"]
FILLER = ["the", "film", "movie", "plot", "was", "is", "very", "quite", "a", "story", "and", "acting", "it", "cast"]


def sentences(n: int, seed: int = 0) -> pd.DataFrame:
    """``n`` sentences of 3..14 words (varied lengths, for length-grouped batches); label 1 if a positive
    word is in it, 0 if a negative one."""
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        label = i % 2
        words = [rng.choice(FILLER) for _ in range(rng.randint(2, 13))]
        words.insert(rng.randint(0, len(words)), rng.choice(POSITIVE if label else NEGATIVE))
        rows.append({"sentence": " ".join(words), "label": label})
    return pd.DataFrame(rows)


def pairs(n: int, seed: int = 0) -> pd.DataFrame:
    """A sentence-pair task: label 1 when both sentences carry the same sentiment."""
    a, b = sentences(n, seed), sentences(n, seed + 1).sample(frac=1, random_state=seed).reset_index(drop=True)
    return pd.DataFrame({"premise": a["sentence"], "hypothesis": b["sentence"],
                         "label": (a["label"] == b["label"]).astype(int)})


def train_tokenizer(texts: list[str], out: Path, vocab_size: int = 120, lowercase: bool = True) -> Path:
    """A BERT-style WordPiece tokenizer of ``texts``, saved under ``out``, the same every run: the vocabulary is the
    special tokens, every character alone and as a ``##`` continuation, the words, then the words' endings as ``##``
    continuations, each most frequent first (ties: alphabetical), up to ``vocab_size``. (``tokenizers``'
    ``WordPieceTrainer`` numbers its ``##`` pieces, and so breaks ties between equally frequent merges, in a hash
    map's order, which changes run to run: a test's tokenizer, and so its model, would differ between runs.)"""
    from collections import Counter

    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers

    normalizer, pre_tokenizer = normalizers.BertNormalizer(lowercase=lowercase), pre_tokenizers.BertPreTokenizer()
    words = Counter(word for text in texts
                    for word, _ in pre_tokenizer.pre_tokenize_str(normalizer.normalize_str(text)))
    endings = Counter()
    for word, count in words.items():
        endings.update({f"##{word[start:]}": count for start in range(1, len(word) - 1)})
    chars = sorted({char for word in words for char in word})
    tokens = dict.fromkeys(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *chars, *(f"##{char}" for char in chars),
                            *most_frequent_first(words), *most_frequent_first(endings)])  # the first of each
    vocab = {token: i for i, token in enumerate(list(tokens)[:vocab_size])}
    tok = Tokenizer(models.WordPiece(vocab=vocab, unk_token="[UNK]"))
    tok.normalizer, tok.pre_tokenizer = normalizer, pre_tokenizer
    return save_bert_tokenizer(tok, out)


def most_frequent_first(counts) -> list[str]:
    """The keys of ``counts`` (a ``Counter``), the most frequent first, ties in alphabetical order."""
    return [key for key, _ in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))]


def save_bert_tokenizer(tok, out: Path) -> Path:
    """``tok`` with BERT's [CLS]/[SEP] template, saved under ``out`` as a ``BertTokenizerFast``."""
    from tokenizers import processors
    from transformers import BertTokenizerFast

    cls, sep = tok.token_to_id("[CLS]"), tok.token_to_id("[SEP]")
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B:1 [SEP]:1", special_tokens=[("[CLS]", cls), ("[SEP]", sep)]
    )
    fast = BertTokenizerFast(tokenizer_object=tok, unk_token="[UNK]", pad_token="[PAD]", cls_token="[CLS]",
                             sep_token="[SEP]", mask_token="[MASK]", model_max_length=64)
    fast.save_pretrained(out)
    return Path(out)


def tiny_checkpoint(out: Path, tokenizer_dir: Path, kind: str = "bert", num_labels: int = 2, layers: int = 2,
                    hidden: int = 32, seed: int = 0, init_range: float = 0.02) -> Path:
    """A random-init BERT or DistilBERT classifier saved with its tokenizer, like a Hub checkpoint."""
    import torch
    from transformers import AutoTokenizer, BertConfig, BertForSequenceClassification, DistilBertConfig
    from transformers import DistilBertForSequenceClassification

    torch.manual_seed(seed)
    tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)
    if kind == "bert":
        config = BertConfig(vocab_size=len(tokenizer), hidden_size=hidden, num_hidden_layers=layers,
                            num_attention_heads=2, intermediate_size=2 * hidden, max_position_embeddings=64,
                            num_labels=num_labels, initializer_range=init_range)
        model = BertForSequenceClassification(config)
    else:
        config = DistilBertConfig(vocab_size=len(tokenizer), dim=hidden, n_layers=layers, n_heads=2,
                                  hidden_dim=2 * hidden, max_position_embeddings=64, num_labels=num_labels,
                                  initializer_range=init_range)
        model = DistilBertForSequenceClassification(config)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return Path(out)


def text_params(teacher: Path, student_tokenizer: Path, **data) -> dict:
    """Params overrides for a tiny text run: a pretrained teacher fine-tuned, a config-built student."""
    return {
        "data": {"text_column": "sentence", "validation_fraction": 0.2, "test_fraction": 0.2, **data},
        "teacher": {
            "model": {"arch": "hf", "pretrained": str(teacher), "max_length": 24},
            "train": {"learning_rate": 0.003, "batch_size": 16, "max_steps": 30, "eval_steps": 10,
                      "logging_steps": 10, "early_stopping_patience": 3},
            "inference_batch_size": 16,
        },
        "student": {
            "model": {"arch": "hf", "config": {"model_type": "distilbert", "dim": 16, "n_layers": 1, "n_heads": 2,
                                               "hidden_dim": 32, "max_position_embeddings": 64},
                      "tokenizer": str(student_tokenizer), "max_length": 24},
        },
        "train": {"seeds": [0, 1], "learning_rate": 0.003, "batch_size": 16, "max_steps": 20, "eval_steps": 10,
                  "logging_steps": 10, "save_steps": 10},
        "evaluate": {"batch_size": 16, "bootstrap_samples": 200, "timing_repeats": 2, "timing_warmup": 1},
    }


def prepare_text_source(tmp_path, root, **data):
    """``data`` (a text source under ``root``) prepared into ``tmp_path / "prepared"``."""
    from distillery.data.prepare import prepare

    from .conftest import make_params

    params = make_params(**text_params(Path("unused"), Path("unused"), **data))
    return prepare(params["data"], tmp_path / "prepared", root)
