"""Training language models: padded batches with next-token labels and the teacher's per-token targets, the
evaluation sums and metrics, the token rows the losses see, and the generated sequences of sequence-level KD."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from transformers import EvalPrediction
from transformers.modeling_outputs import CausalLMOutput

from distillery.data.corpus import write_sequences
from distillery.data.prepared import UNLABELLED
from distillery.data.transfer import GENERATED_LOGITS, GENERATED_SEQUENCES
from distillery.methods.kd import kd_terms
from distillery.methods.seqkd import METHOD as SEQKD
from distillery.methods import StepInputs
from distillery.token_logits import compress_tokens, dense_targets, load_token_logits, write_token_logits
from distillery.training.causal_lm import TokenSequences, token_metrics, token_sums, with_generated
from distillery.training.trainer import tokens_as_rows

TOKENS = np.array([5, 6, 7, 0, 8, 9, 0])  # two sequences: [5, 6, 7, 0] and [8, 9, 0]
OFFSETS = np.array([0, 4, 7])


def store(tmp_path, name, ids, tokens, offsets, vocab=10, k=None, seed=0):
    lengths = np.diff(offsets)
    logits = torch.randn(int((lengths - 1).sum()), vocab, generator=torch.Generator().manual_seed(seed))
    positions = np.concatenate([np.arange(n - 1) for n in lengths])
    path = tmp_path / name
    write_token_logits(path, np.repeat(ids, lengths - 1), positions, compress_tokens(logits, k), vocab_size=vocab)
    return load_token_logits(path, np.asarray(ids), lengths, vocab), logits


def test_batches_hold_next_tokens_as_labels_and_padding_masked():
    batch = TokenSequences(TOKENS, OFFSETS, pad_id=0).__getitems__([1, 0])
    assert batch["input_ids"].tolist() == [[8, 9, 0, 0], [5, 6, 7, 0]]
    assert batch["attention_mask"].tolist() == [[1, 1, 1, 0], [1, 1, 1, 1]]
    assert batch["labels"].tolist() == [[9, 0, UNLABELLED, UNLABELLED], [6, 7, 0, UNLABELLED]]


def test_batches_carry_the_teacher_s_targets_of_their_rows(tmp_path):
    targets, logits = store(tmp_path, "t.parquet", np.array([1, 2]), TOKENS, OFFSETS)
    batch = TokenSequences(TOKENS, OFFSETS, 0, targets).__getitems__([1, 0])
    assert batch["teacher_logits"].shape == (2, 4, 10)
    torch.testing.assert_close(batch["teacher_logits"][0, :2], logits[3:5])  # row 1's two targets
    torch.testing.assert_close(batch["teacher_logits"][1, :3], logits[:3])


def test_tokens_as_rows_keeps_the_target_tokens_of_logits_targets_and_labels():
    labels = torch.tensor([[9, 0, UNLABELLED], [6, UNLABELLED, UNLABELLED]])
    logits, teacher = torch.randn(2, 3, 10), torch.randn(2, 3, 10)
    rows, targets, kept, token_index = tokens_as_rows(CausalLMOutput(logits=logits), teacher, labels)
    assert kept.tolist() == [9, 0, 6]
    assert [place.tolist() for place in token_index] == [[0, 0, 1], [0, 1, 0]]  # (sequence, position) of each row
    torch.testing.assert_close(rows.logits, torch.stack([logits[0, 0], logits[0, 1], logits[1, 0]]))
    torch.testing.assert_close(targets, torch.stack([teacher[0, 0], teacher[0, 1], teacher[1, 0]]))
    index = torch.stack([torch.randperm(10)[:4] for _ in range(6)]).view(2, 3, 4)  # k = 4 distinct tokens each
    parts = {"index": index, "top": torch.randn(2, 3, 4), "rest": torch.randn(2, 3)}
    _, top_k_targets, _, _ = tokens_as_rows(CausalLMOutput(logits=logits), parts, labels)  # made dense for the rows
    torch.testing.assert_close(top_k_targets, dense_targets(parts, 10)[labels != UNLABELLED], rtol=0, atol=0)
    classifier = CausalLMOutput(logits=torch.randn(4, 3))
    assert tokens_as_rows(classifier, None, torch.arange(3))[0] is classifier
    assert tokens_as_rows(classifier, None, torch.arange(3))[3] is None


def test_tokens_as_rows_finds_the_target_tokens_once():
    """On a GPU a boolean index waits for the device (it counts the rows first): the target tokens are found once
    (one nonzero) and the logits, the teacher's top-k parts and the labels are indexed by their positions."""
    from torch.utils._python_dispatch import TorchDispatchMode

    seen = []

    class Seen(TorchDispatchMode):
        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            if func is torch.ops.aten.nonzero.default:
                seen.append("nonzero")
            elif func is torch.ops.aten.index.Tensor:
                seen.append([index.dtype for index in args[1]])
            return func(*args, **(kwargs or {}))

    labels = torch.tensor([[9, 0, UNLABELLED], [6, UNLABELLED, UNLABELLED]])
    parts = {"index": torch.zeros(2, 3, 4, dtype=torch.int64), "top": torch.randn(2, 3, 4), "rest": torch.randn(2, 3)}
    with Seen():
        tokens_as_rows(CausalLMOutput(logits=torch.randn(2, 3, 10)), parts, labels)
    assert seen == ["nonzero"] + [[torch.int64, torch.int64]] * 5


def test_token_sums_and_metrics_by_hand():
    # V = 2; sequence 0 targets [1, 0] at logits [0, 0] (nll log 2, argmax 0: wrong) and [log 3, 0]
    # (p(0) = 3/4: nll log 4/3, right); sequence 1 has one target 1 at [0, log 3] (nll log 4/3, right)
    logits = torch.tensor([[[0.0, 0.0], [math.log(3), 0.0]], [[0.0, math.log(3)], [5.0, 5.0]]])
    labels = torch.tensor([[1, 0], [1, UNLABELLED]])
    sums = token_sums(logits, labels)
    expected = [[math.log(2) + math.log(4 / 3), 1, 2], [math.log(4 / 3), 1, 1]]
    torch.testing.assert_close(sums, torch.tensor(expected), atol=1e-6, rtol=1e-6)
    metrics = token_metrics(EvalPrediction(predictions=sums.numpy(), label_ids=None))
    nll = (math.log(2) + 2 * math.log(4 / 3)) / 3
    assert metrics["nll"] == pytest.approx(nll, rel=1e-6)
    assert metrics["perplexity"] == pytest.approx(math.exp(nll), rel=1e-6)
    assert metrics["accuracy"] == pytest.approx(2 / 3)


def test_seqkd_is_kd_s_loss_on_the_corpus_and_the_teacher_s_sequences():
    assert SEQKD.needs == {"teacher_logits", "generated"} and SEQKD.terms == ("ce", "kd")
    s, t, y = torch.randn(5, 10), torch.randn(5, 10), torch.tensor([1, 2, 3, 4, 5])
    got = SEQKD.loss(StepInputs(student=CausalLMOutput(logits=s), labels=y, teacher_logits=t), {"T": 2.0, "alpha": 0.3})
    assert got.loss.item() == pytest.approx(kd_terms(s, t, y, 2.0, 0.3).loss.item(), rel=1e-12)


def test_generated_sequences_follow_the_corpus_with_their_own_targets(tmp_path):
    corpus, _ = store(tmp_path, "train.parquet", np.array([1, 2]), TOKENS, OFFSETS, k=3)
    generated_tokens, generated_offsets = np.array([5, 9, 9, 0, 8, 1, 0]), np.array([0, 4, 7])
    write_sequences(tmp_path / GENERATED_SEQUENCES, np.array([2, 1]), generated_tokens, generated_offsets)
    _, logits = store(tmp_path, GENERATED_LOGITS, np.array([2, 1]), generated_tokens, generated_offsets, k=3, seed=1)
    train = TokenSequences(TOKENS, OFFSETS, 0, corpus, T=2.0)
    union, key = with_generated(train, tmp_path, 10)
    assert len(union) == 4 and len(key) == 64
    batch = union.__getitems__([2, 3, 0])
    assert batch["input_ids"][:2].tolist() == [[5, 9, 9, 0], [8, 1, 0, 0]]
    assert batch["labels"][1].tolist() == [1, 0, UNLABELLED, UNLABELLED]
    alone = TokenSequences(generated_tokens, generated_offsets, 0,
                           load_token_logits(tmp_path / GENERATED_LOGITS, np.array([2, 1]), np.array([4, 3]), 10),
                           T=2.0).__getitems__([0, 1])
    union_targets, alone_targets = (dense_targets(b["teacher_logits"], 10) for b in (batch, alone))
    torch.testing.assert_close(union_targets[:2], alone_targets)
    torch.testing.assert_close(union_targets[2], dense_targets(train.__getitems__([0])["teacher_logits"], 10)[0])


def test_the_teacher_stage_refuses_a_student_that_would_not_fit_before_the_teacher_trains():
    """A helper's student of 300 tokens (the BPE had 434) was refused in distill, after the teacher had trained."""
    from transformers import GPT2Config

    from distillery.errors import DistilleryError
    from distillery.training.causal_lm import check_student_fits

    from ..models.test_causal_lm import word_tokenizer

    tokenizer, teacher = word_tokenizer(), GPT2Config(vocab_size=8, n_layer=1, n_head=2, n_embd=8)

    def params(method: str, **config) -> dict:
        gpt2 = {"model_type": "gpt2", "n_layer": 1, "n_head": 2, "n_embd": 8, **config}
        return {"student": {"model": {"pretrained": None, "config": gpt2}}, "kd": {"method": method}}

    check_student_fits(params("kd"), tokenizer, 12, teacher)  # the tokenizer's 8 tokens: fits
    with pytest.raises(DistilleryError, match="student.model.config: the model's vocabulary has 4 tokens but the "
                                              "prepared tokenizer has 8"):
        check_student_fits(params("kd", vocab_size=4), tokenizer, 12, teacher)
    with pytest.raises(DistilleryError, match="student.model: the student's vocabulary has 16 tokens, the teacher's 8"):
        check_student_fits(params("kd", vocab_size=16), tokenizer, 12, teacher)
    with pytest.raises(DistilleryError, match=r"data.max_length = 12 is above the model's 4 positions"):
        check_student_fits(params("kd", n_positions=4), tokenizer, 12, teacher)
