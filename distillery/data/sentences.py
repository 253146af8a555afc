"""A validation split of whole sentences (``data.validation_split: sentences``) for text sources whose train rows
include phrases of other rows.

SST-2's 67,349 train rows are the 6,885 sentences of the Stanford Sentiment Treebank's train split *and* every
phrase of their parse trees; its scored split holds whole, unseen sentences. A random validation split of such
rows is mostly short phrases whose sentences stay in train, so it rewards memorising train text and cannot tell
apart settings that the scored split can. Here:

- a row is a *sentence* when its text lies inside no other row's text (word for word, whitespace collapsed);
  every other row is a *phrase* of the sentences that contain it;
- validation is a stratified ``data.validation_fraction`` of the sentences (``data.split_seed``);
- a phrase found only inside validation sentences leaves train (it is their text); a phrase that also lies
  inside a train sentence stays (it is common text, like the phrases train shares with the scored split).

Rows of the held-out test split are neither sentences nor phrases here: they are never searched. A classifier's
sentences are split stratified by label; a language model's corpus splits the texts of its prompts (or, without
prompts, of ``data.text_column``) at random.
"""
from __future__ import annotations

from collections import defaultdict

import numpy as np

from ..errors import DistilleryError
from .splitting import random_split_indices, split_indices


def normalised(text: str) -> str:
    """``text`` with its whitespace collapsed to single spaces and stripped."""
    return " ".join(str(text).split())


class _Index:
    """Texts indexed by their words, to find those containing a phrase word for word."""

    def __init__(self, texts: list[str]):
        self.texts = texts
        self.padded = [f" {t} " for t in texts]
        self.by_word: dict[str, list[int]] = defaultdict(list)
        for i, text in enumerate(texts):
            for word in set(text.split()):
                self.by_word[word].append(i)

    def add(self, text: str) -> None:
        i = len(self.texts)
        self.texts.append(text)
        self.padded.append(f" {text} ")
        for word in set(text.split()):
            self.by_word[word].append(i)

    def contains(self, phrase: str) -> bool:
        """Whether some indexed text holds ``phrase`` word for word."""
        words = phrase.split()
        if not words:
            return False
        candidates = min((self.by_word.get(w, ()) for w in words), key=len)
        padded = f" {phrase} "
        return any(padded in self.padded[i] for i in candidates)


def sentence_rows(texts: list[str]) -> np.ndarray:
    """Whether each of ``texts`` is a sentence: its words lie inside no other text (of two equal texts, the first
    is the sentence). Empty texts are not sentences."""
    texts = [normalised(t) for t in texts]
    order = sorted(range(len(texts)), key=lambda i: (-len(texts[i]), i))
    found = _Index([])
    is_sentence = np.zeros(len(texts), bool)
    for i in order:
        if texts[i] and not found.contains(texts[i]):
            is_sentence[i] = True
            found.add(texts[i])
    return is_sentence


def sentence_split_indices(texts: list[str], labels: np.ndarray | None, data_params: dict,
                           test_mask: np.ndarray | None, source: str,
                           label_names: list[str] | None = None) -> tuple[dict[str, np.ndarray], int]:
    """Train/validation/test row indices with validation drawn from whole sentences (see the module docstring), and
    the number of train phrases left out because they lie only inside validation sentences. The sentences are
    split stratified by ``labels``, or at random where they are None (a corpus). ``test_mask``: the rows of the
    source's held-out split (the prepared test split); None: test is a ``data.test_fraction`` of the sentences
    too, with the same rule for its phrases."""
    labels = None if labels is None else np.asarray(labels)
    texts = [normalised(t) for t in texts]
    rows = np.arange(len(texts))
    held = np.zeros(len(texts), bool) if test_mask is None else np.asarray(test_mask, bool)
    pool = rows[~held]
    is_sentence = np.zeros(len(texts), bool)
    is_sentence[pool] = sentence_rows([texts[i] for i in pool])
    sentences, phrases = rows[is_sentence], pool[~is_sentence[pool]]
    drawn = np.r_[sentences, rows[held]]  # the rows split_indices splits: the sentences, then the held-out test rows
    drawn_mask = None if test_mask is None else held[drawn]
    index = random_split_indices(len(drawn), data_params, drawn_mask, source) if labels is None else \
        split_indices(labels[drawn], data_params, drawn_mask, source, label_names)
    train_sentences = drawn[index["train"]]
    held_out = {split: drawn[index[split]] for split in ("test", "validation")}

    train_index = _Index([texts[i] for i in train_sentences])
    left_out = 0
    for split in ("test", "validation") if test_mask is None else ("validation",):  # the splits made of sentences
        held_index = _Index([texts[i] for i in held_out[split]])
        inside = np.array([held_index.contains(texts[i]) for i in phrases], bool)
        kept = np.array([train_index.contains(texts[i]) for i in phrases[inside]], bool)
        left_out += int((~kept).sum())
        phrases = np.concatenate([phrases[~inside], phrases[inside][kept]])
    return {"train": np.sort(np.concatenate([train_sentences, phrases])),
            "validation": np.sort(held_out["validation"]), "test": np.sort(held_out["test"])}, left_out


def check_train_to_split(tables: dict, source: str) -> None:
    """Refuse a sentence split of a source with its own validation and test splits: nothing is split off train."""
    if "validation" in tables and "test" in tables:
        raise DistilleryError(f"{source}: data.validation_split = 'sentences', but the source has its own "
                              "validation and test splits, which are used as they are: nothing is split off train")


def sentence_split_origin(origin: dict, left_out: int, tables: dict, data_params: dict, stratified: bool) -> None:
    """Rewrite ``origin`` (split -> where it came from, in words) for a sentence split of the source ``tables``
    that left ``left_out`` train phrases out."""
    one_file = "validation" not in tables and "test" not in tables
    how = "stratified; " if stratified else ""
    origin["validation"] = (f"{data_params['validation_fraction'] * 100:g} % of the sentences of "
                            f"{'the non-test rows' if one_file else 'source train'} ({how}"
                            "data.validation_split: sentences)")
    if one_file:
        origin["test"] = f"{data_params['test_fraction'] * 100:g} % of the sentences{' (stratified)' * stratified}"
    origin["train"] += (f", less {left_out:,} phrases found only inside validation"
                        f"{' or test' if one_file else ''} sentences")
