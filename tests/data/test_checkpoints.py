"""``save_tokenizer``: the saved tokenizer.json does not depend on the tokenizer's last call (a run that tokenizes
and one that reads its tokens from the cache save the same bytes)."""
from __future__ import annotations

import json

from distillery.data.checkpoints import save_tokenizer

from ..text_utils import sentences, train_tokenizer


def test_saved_tokenizer_is_the_same_bytes_whether_or_not_it_was_called(tmp_path):
    from transformers import AutoTokenizer

    train_tokenizer(sentences(40)["sentence"].tolist(), tmp_path / "tok")
    tokenizer = AutoTokenizer.from_pretrained(tmp_path / "tok")
    tokenizer.backend_tokenizer.enable_padding(length=128)  # as shipped by some checkpoints (all-MiniLM-L6-v2)
    tokenizer.backend_tokenizer.enable_truncation(128)
    save_tokenizer(tokenizer, tmp_path / "fresh")
    tokenizer(["the film was great"], truncation=True, max_length=16)  # leaves truncation 16 in the backend
    save_tokenizer(tokenizer, tmp_path / "called")
    fresh = (tmp_path / "fresh" / "tokenizer.json").read_bytes()
    assert fresh == (tmp_path / "called" / "tokenizer.json").read_bytes()
    saved = json.loads(fresh)
    assert saved["padding"] is None and saved["truncation"] is None
    again = AutoTokenizer.from_pretrained(tmp_path / "called")
    assert again(["the film was great"])["input_ids"] == tokenizer(["the film was great"])["input_ids"]
