"""Causal language models: building from a config or a checkpoint, the refusals before any training, per-token logits
and sampled continuations (of the teacher, once; of the student, on-policy)."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from transformers import AutoModelForCausalLM, GPT2Config, PreTrainedTokenizerFast
from transformers.modeling_outputs import CausalLMOutputWithPast

from distillery.data.prepared import UNLABELLED
from distillery.errors import DistilleryError
from distillery.models.causal_lm import (build_causal_lm, causal_lm_config, check_same_vocabulary, first_differing_token, padded,
                                         continue_prompts, padded_batches, sample_continuations,
                                         TeacherMixture, has_next, prompt_lengths_from_labels,
                                         token_logits_batches)
from distillery.token_logits import compress_tokens, load_token_logits, token_logits_writer

WORDS = ["<|endoftext|>", "a", "b", "c", "d", "e", "f", "g"]


def word_tokenizer(words=WORDS) -> PreTrainedTokenizerFast:
    from tokenizers import Tokenizer, models, pre_tokenizers

    tok = Tokenizer(models.WordLevel({w: i for i, w in enumerate(words)}, unk_token=words[0]))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    return PreTrainedTokenizerFast(tokenizer_object=tok, eos_token=words[0], pad_token=words[0])


def spec(**config) -> dict:
    return {"pretrained": None, "config": {"model_type": "gpt2", "n_layer": 1, "n_head": 2, "n_embd": 8, **config}}


def test_a_model_from_a_config_takes_the_tokenizer_s_vocabulary_and_max_length_positions():
    model = build_causal_lm(spec(), word_tokenizer(), 12, "student.model")
    assert model.config.vocab_size == len(WORDS) and model.config.n_positions == 12
    assert model.config.eos_token_id == 0 and model.config.pad_token_id == 0


def test_max_length_above_the_model_s_positions_is_refused():
    with pytest.raises(DistilleryError, match=r"data.max_length = 32 is above the model's 16 positions"):
        build_causal_lm(spec(n_positions=16), word_tokenizer(), 32, "teacher.model")


def test_a_checkpoint_with_another_tokenizer_is_refused_naming_the_first_differing_token(tmp_path):
    other = word_tokenizer(WORDS[:3] + ["x"] + WORDS[4:])
    model = AutoModelForCausalLM.from_config(GPT2Config(vocab_size=len(WORDS), n_layer=1, n_head=2, n_embd=8,
                                                        n_positions=16))
    model.save_pretrained(tmp_path)
    other.save_pretrained(tmp_path)
    with pytest.raises(DistilleryError, match=r"^teacher.model.pretrained = .*token id 3 is 'x' in one and 'c' in the "
                                              r"other. Every model of the run reads the tokens prepare wrote with "
                                              r"data.tokenizer: set it to this checkpoint's folder"):
        build_causal_lm({"pretrained": str(tmp_path), "config": None}, word_tokenizer(), 12, "teacher.model")
    from distillery.models.causal_lm import checked_checkpoint_config

    with pytest.raises(DistilleryError, match=r"^teacher.checkpoint = .*: its tokenizer"):  # not ...checkpoint.pretrained
        checked_checkpoint_config({"pretrained": str(tmp_path), "config": None}, word_tokenizer(), 12,
                                  "teacher.checkpoint")


def test_a_vocabulary_smaller_than_the_tokenizer_is_refused(tmp_path):
    model = AutoModelForCausalLM.from_config(GPT2Config(vocab_size=4, n_layer=1, n_head=2, n_embd=8))
    model.save_pretrained(tmp_path)
    with pytest.raises(DistilleryError, match=r"vocabulary has 4 tokens but the prepared tokenizer has 8; set "
                                              r"data.tokenizer to the model's own tokenizer"):
        build_causal_lm({"pretrained": str(tmp_path), "config": None}, word_tokenizer(), 12, "teacher.model")
    config = {"model_type": "gpt2", "vocab_size": 4, "n_layer": 1, "n_head": 2, "n_embd": 8}
    with pytest.raises(DistilleryError, match=r"student.model.config: the model's vocabulary has 4 tokens but the "
                                              r"prepared tokenizer has 8; leave vocab_size out of student.model.config"):
        causal_lm_config({"pretrained": None, "config": config}, word_tokenizer(), 12, "student.model")


def test_a_student_of_another_vocabulary_size_is_refused_naming_both():
    with pytest.raises(DistilleryError, match=r"student's vocabulary has 8 tokens, the teacher's 50257"):
        check_same_vocabulary(GPT2Config(vocab_size=8), GPT2Config())


def test_first_differing_token():
    assert first_differing_token({"a": 0, "b": 1}, {"a": 0, "b": 1}) is None
    assert first_differing_token({"a": 0, "b": 1}, {"a": 0}) == "token id 1 is 'b' in one and None in the other"


def test_padded_batches_group_by_length_within_both_limits():
    offsets = np.array([0, 5, 7, 12, 13, 15])  # lengths 5, 2, 5, 1, 2
    batches = list(padded_batches(offsets, batch_size=2, max_tokens=8))
    assert [b.tolist() for b in batches] == [[3, 1], [4], [0], [2]]  # (2+1)*5 > 8 splits the long ones


def test_padded_right_pads_with_the_pad_id():
    tokens = torch.arange(10, 17)
    input_ids, mask = padded(tokens, np.array([0, 3, 7]), np.array([1, 0]), pad_id=0)
    assert input_ids.tolist() == [[13, 14, 15, 16], [10, 11, 12, 0]]
    assert mask.tolist() == [[1, 1, 1, 1], [1, 1, 1, 0]]


@pytest.fixture(scope="module")
def tiny_lm():
    torch.manual_seed(0)
    return AutoModelForCausalLM.from_config(GPT2Config(vocab_size=8, n_layer=1, n_head=2, n_embd=8, n_positions=16,
                                                       eos_token_id=0, pad_token_id=0)).eval()


def test_token_logits_batches_key_every_position_with_a_next_token_and_match_the_model(tiny_lm, tmp_path):
    tokens = np.array([1, 2, 3, 0, 4, 5, 0, 6, 7, 1, 2, 0])
    offsets, ids = np.array([0, 4, 7, 12]), np.array([30, 10, 20])
    batches = list(token_logits_batches(tiny_lm, tokens, offsets, ids, None, 0, batch_size=2, desc="t",
                                        device=torch.device("cpu")))
    assert len(batches) == 2  # by length: rows 1 and 0, then row 2
    keys = sorted((int(i), int(p)) for batch_ids, positions, _ in batches for i, p in zip(batch_ids, positions))
    assert keys == [(10, 0), (10, 1), (20, 0), (20, 1), (20, 2), (20, 3), (30, 0), (30, 1), (30, 2)]
    with token_logits_writer(tmp_path / "t.parquet", 8, None) as writer:
        for batch in batches:
            writer.write(*batch)
    assert writer.stored.num_tokens == 9
    stored = load_token_logits(tmp_path / "t.parquet", ids, np.diff(offsets), 8)  # in the rows' order: 30, 10, 20
    with torch.inference_mode():
        row = tiny_lm(input_ids=torch.tensor([[6, 7, 1, 2, 0]])).logits[0, :4]
    np.testing.assert_allclose(stored.parts["logits"][5:9], row.numpy(), atol=1e-5)
    with token_logits_writer(tmp_path / "top.parquet", 8, 3) as writer:  # one batch of all three rows
        for batch in token_logits_batches(tiny_lm, tokens, offsets, ids, 3, 0, batch_size=8, desc="t",
                                          device=torch.device("cpu")):
            writer.write(*batch)
    top = load_token_logits(tmp_path / "top.parquet", ids, np.diff(offsets), 8)
    expected = compress_tokens(torch.from_numpy(stored.parts["logits"]), 3)
    np.testing.assert_array_equal(top.parts["index"], expected["index"])


def test_sampled_continuations_are_seeded_start_with_their_prompt_and_stop_at_the_end_of_text(tiny_lm):
    tokens = np.array([1, 2, 3, 4, 0, 5, 6, 7, 0, 1, 0, 2, 3, 4, 5, 0])
    offsets, ids = np.array([0, 5, 9, 11, 16]), np.array([7, 8, 9, 10])
    generate = {"sequences": 3, "prompt_tokens": 2, "temperature": 1.0, "top_p": 1.0, "seed": 3}
    first = sample_continuations(tiny_lm, tokens, offsets, ids, generate, 10, 0, 2, torch.device("cpu"))
    again = sample_continuations(tiny_lm, tokens, offsets, ids, generate, 10, 0, 2, torch.device("cpu"))
    for a, b in zip(first, again):
        np.testing.assert_array_equal(a, b)
    chosen, flat, new_offsets, prompts = first
    assert prompts.tolist() == [2, 2, 2]
    assert chosen.tolist() == [7, 8, 10]  # row 9 (two tokens) is no longer than its prompt
    sources = {7: [1, 2], 8: [5, 6], 10: [2, 3]}
    for i, row_id in enumerate(chosen):
        sequence = flat[new_offsets[i]:new_offsets[i + 1]]
        assert sequence[:2].tolist() == sources[row_id] and 2 < len(sequence) <= 10
        assert (sequence[2:-1] != 0).all()  # cut after the first end-of-text token
    other = sample_continuations(tiny_lm, tokens, offsets, ids, {**generate, "seed": 4}, 10, 0, 2,
                                 torch.device("cpu"))
    assert not np.array_equal(other[1], flat) or other[0].tolist() != chosen.tolist()


BATCH = torch.tensor([[1, 2, 3, 4, 5, 0], [6, 7, 0, 0, 0, 0], [3, 0, 0, 0, 0, 0]])  # right-padded, pad = end = 0
MASK = torch.tensor([[1, 1, 1, 1, 1, 1], [1, 1, 1, 0, 0, 0], [1, 1, 0, 0, 0, 0]])


def test_continued_prompts_keep_each_prompt_label_only_the_samples_and_stop_after_the_end_of_text(tiny_lm):
    tiny_lm.train()
    torch.manual_seed(0)
    batches = [continue_prompts(tiny_lm, BATCH, MASK, 3, 6, 1.0, eos_id=0, pad_id=0) for _ in range(20)]
    assert tiny_lm.training  # the model's mode restored (it sampled in eval mode)
    prompts = [[1, 2, 3], [6, 7], [3]]  # at most 3 tokens, a shorter row all but its last
    ends = 0
    for batch in batches:
        ids, mask, labels = batch["input_ids"], batch["attention_mask"], batch["labels"]
        assert ids.shape == mask.shape == labels.shape and ids.shape[1] <= 3 + 6
        for row, prompt in enumerate(prompts):
            length = int(mask[row].sum())
            assert mask[row, :length].all() and not mask[row, length:].any()  # right-padded
            assert ids[row, :len(prompt)].tolist() == prompt and (ids[row, length:] == 0).all()
            samples = ids[row, len(prompt):length]
            assert 1 <= len(samples) <= 6 and (samples[:-1] != 0).all()  # cut after the first end-of-text token
            ends += int(samples[-1] == 0)
            expected = [UNLABELLED] * (len(prompt) - 1) + samples.tolist()  # the prompt's last predicts the first
            assert labels[row].tolist() == expected + [UNLABELLED] * (ids.shape[1] - len(expected))
    assert 0 < ends < 60  # some rows ended early, some ran to max_new_tokens
    torch.manual_seed(0)
    again = continue_prompts(tiny_lm, BATCH, MASK, 3, 6, 1.0, eos_id=0, pad_id=0)
    assert all(torch.equal(again[key], batches[0][key]) for key in again)  # torch's seed decides the samples
    tiny_lm.eval()


def test_a_left_padded_prompt_is_continued_as_the_same_prompt_alone(tiny_lm):
    """The prompts are left-padded for generate: a short row's tokens must keep their positions (0, 1, ...) there.
    Positions made to matter (large position embeddings), sampling near greedy: the short row's continuation is the
    one it gets alone."""
    import copy

    model = copy.deepcopy(tiny_lm)
    with torch.no_grad():
        model.transformer.wpe.weight.normal_(0, 3, generator=torch.Generator().manual_seed(1))
    together = continue_prompts(model, BATCH, MASK, 3, 6, 1e-4, eos_id=0, pad_id=0)
    for row, prompt_tokens in ((1, 2), (2, 1)):  # alone, the prompt is as wide as the row's: no padding
        alone = continue_prompts(model, BATCH[row:row + 1], MASK[row:row + 1], prompt_tokens, 6, 1e-4, eos_id=0,
                                 pad_id=0)
        length = int(alone["attention_mask"].sum())
        assert together["input_ids"][row, :length].tolist() == alone["input_ids"][0, :length].tolist()


class FixedTeacher(torch.nn.Module):
    """Next-token logits ``logits`` at every position; records what it was called with, and returns the number of
    calls as its cache."""

    def __init__(self, logits):
        super().__init__()
        self.logits, self.calls = torch.tensor(logits), []

    def forward(self, input_ids, attention_mask, position_ids, past_key_values, use_cache):
        self.calls.append((input_ids.clone(), attention_mask.clone(), position_ids.clone(), past_key_values))
        return CausalLMOutputWithPast(logits=self.logits.expand(*input_ids.shape, -1),
                                      past_key_values=len(self.calls))


def test_the_teacher_mixture_is_the_weighted_sum_of_both_distributions_with_the_prompts_positions():
    teacher = FixedTeacher([0.0, 1.0, 2.0, 0.5])
    prompt_mask = torch.tensor([[0, 1, 1], [1, 1, 1]])  # row 0 left-padded by one
    ids, scores = torch.tensor([[0, 5, 6, 7, 2], [1, 2, 3, 7, 2]]), torch.tensor([[3.0, 0, 0, 1], [0, 0, 2, 0]])
    mixture = TeacherMixture(teacher, 0.3, prompt_mask)
    mixed = mixture(ids, scores)
    expected = 0.3 * torch.softmax(teacher.logits, -1) + 0.7 * torch.softmax(scores, -1)
    torch.testing.assert_close(mixed.exp(), expected)
    tokens, mask, positions, cache = teacher.calls[0]  # the prompts' padding, then the two generated tokens
    assert torch.equal(tokens, ids) and cache is None
    assert mask.tolist() == [[0, 1, 1, 1, 1], [1, 1, 1, 1, 1]]
    assert positions.tolist() == [[0, 0, 1, 2, 3], [0, 1, 2, 3, 4]]
    mixture(torch.cat([ids, torch.tensor([[4], [1]])], dim=1), scores)  # the next token: that one alone, cached
    tokens, mask, positions, cache = teacher.calls[1]
    assert tokens.tolist() == [[4], [1]] and positions.tolist() == [[4], [5]] and mask.shape == (2, 6) and cache == 1


def test_continued_prompts_mixed_all_with_the_teacher_are_the_teacher_s_own_left_padding_or_not(tiny_lm):
    """teacher_mix 1 samples from the teacher alone (near greedy): the student's continuations are the teacher's,
    and a left-padded prompt's the one it gets alone (the teacher's positions made to matter)."""
    import copy

    teacher = copy.deepcopy(tiny_lm)
    with torch.no_grad():
        teacher.transformer.wpe.weight.normal_(0, 3, generator=torch.Generator().manual_seed(1))
        teacher.transformer.wte.weight.normal_(0, 3, generator=torch.Generator().manual_seed(2))
    mixed = continue_prompts(tiny_lm, BATCH, MASK, 3, 6, 1e-4, eos_id=0, pad_id=0, teacher=teacher, teacher_mix=1.0)
    own = continue_prompts(teacher, BATCH, MASK, 3, 6, 1e-4, eos_id=0, pad_id=0)
    assert all(torch.equal(mixed[key], own[key]) for key in own)
    for row, prompt_tokens in ((1, 2), (2, 1)):
        alone = continue_prompts(tiny_lm, BATCH[row:row + 1], MASK[row:row + 1], prompt_tokens, 6, 1e-4, eos_id=0,
                                 pad_id=0, teacher=teacher, teacher_mix=1.0)
        length = int(alone["attention_mask"].sum())
        assert mixed["input_ids"][row, :length].tolist() == alone["input_ids"][0, :length].tolist()
    student = continue_prompts(tiny_lm, BATCH, MASK, 3, 6, 1e-4, eos_id=0, pad_id=0)
    assert not torch.equal(student["input_ids"], own["input_ids"])  # the student alone continues otherwise


def test_the_targets_of_prompted_rows_start_at_each_prompt_s_last_token():
    offsets = np.array([0, 5, 8, 10])
    assert has_next(offsets, np.array([0, 2]), 6).tolist() == [[True] * 4 + [False] * 2, [True] + [False] * 5]
    starts = np.array([2, 1, 0])  # prompts of 3, 2 and 1 tokens
    assert has_next(offsets, np.array([0, 1, 2]), 5, starts).tolist() == [
        [False, False, True, True, False], [False, True, False, False, False], [True, False, False, False, False]]
    labels = torch.tensor([[UNLABELLED, UNLABELLED, 4, 5, UNLABELLED], [UNLABELLED, 7, UNLABELLED, UNLABELLED, 0]])
    assert prompt_lengths_from_labels(labels).tolist() == [3, 2]


def test_token_logits_of_prompted_rows_are_keyed_at_the_response_positions_only(tiny_lm, tmp_path):
    tokens = np.array([1, 2, 3, 0, 4, 5, 0, 6, 7, 1, 2, 0])
    offsets, ids = np.array([0, 4, 7, 12]), np.array([30, 10, 20])
    starts = np.array([1, 0, 3])  # prompts of 2, 1 and 4 tokens
    batches = list(token_logits_batches(tiny_lm, tokens, offsets, ids, None, 0, batch_size=2, desc="t",
                                        device=torch.device("cpu"), starts=starts))
    keys = sorted((int(i), int(p)) for batch in batches for i, p in zip(batch[0], batch[1]))
    assert keys == [(10, 0), (10, 1), (20, 3), (30, 1), (30, 2)]  # positions start..length-2
    with token_logits_writer(tmp_path / "t.parquet", 8, None) as writer:
        for batch in batches:
            writer.write(*batch)
    stored = load_token_logits(tmp_path / "t.parquet", ids, np.diff(offsets), 8, starts)
    with torch.inference_mode():
        row = tiny_lm(input_ids=torch.tensor([[6, 7, 1, 2, 0]])).logits[0]
    np.testing.assert_allclose(stored.parts["logits"][4], row[3].numpy(), atol=1e-5)  # row 20 after 30's and 10's
    with pytest.raises(DistilleryError, match=r"keys do not match the prepared split .* 2 missing \(e\.g\. \[\(30, 0\), "
                                              r"\(20, 2\)\]\)"):
        load_token_logits(tmp_path / "t.parquet", ids, np.diff(offsets), 8, np.array([0, 0, 2]))


def test_each_row_s_own_prompt_is_answered_greedily_as_it_would_be_alone(tiny_lm):
    """A tensor of prompt lengths keeps each row's own prompt (however long its row); temperature None is greedy,
    and each row's answer is the one it gets alone; max_length caps the answers of the longest prompt."""
    import copy

    model = copy.deepcopy(tiny_lm)
    with torch.no_grad():
        model.transformer.wpe.weight.normal_(0, 3, generator=torch.Generator().manual_seed(1))
    prompts = torch.tensor([4, 1, 2])
    together = continue_prompts(model, BATCH, MASK, prompts, 6, None, eos_id=0, pad_id=0)
    for row, prompt in enumerate(prompts.tolist()):
        assert together["input_ids"][row, :prompt].tolist() == BATCH[row, :prompt].tolist()
        assert (together["labels"][row, :prompt - 1] == UNLABELLED).all()
        with torch.inference_mode():
            alone = model.generate(BATCH[row:row + 1, :prompt], attention_mask=torch.ones(1, prompt, dtype=torch.long),
                                   do_sample=False, max_new_tokens=6, pad_token_id=0, eos_token_id=0)[0, prompt:]
        ended = (alone == 0).nonzero()
        alone = alone[:int(ended[0]) + 1] if len(ended) else alone
        length = int(together["attention_mask"][row].sum())
        assert together["input_ids"][row, prompt:length].tolist() == alone.tolist()
    capped = continue_prompts(model, BATCH, MASK, prompts, 6, None, eos_id=0, pad_id=0, max_length=7)
    assert capped["input_ids"].shape[1] <= 7 and int(capped["attention_mask"][0].sum()) <= 7


def greedy_alone(model, row: int, prompt: int, new_tokens: int) -> list[int]:
    """A row's greedy answer generated alone, cut after its end-of-text token (0)."""
    with torch.inference_mode():
        alone = model.generate(BATCH[row:row + 1, :prompt], attention_mask=torch.ones(1, prompt, dtype=torch.long),
                               do_sample=False, max_new_tokens=new_tokens, pad_token_id=0, eos_token_id=0)[0, prompt:]
    ended = (alone == 0).nonzero()
    return (alone[:int(ended[0]) + 1] if len(ended) else alone).tolist()


def test_each_row_may_answer_up_to_max_length_whatever_the_positions(tiny_lm):
    """Prompts of 4, 1 and 2 tokens within max_length 7: each row answers as it would alone with 7 − its prompt new
    tokens (the long prompt's row is cut after). A model of 9 positions cannot run the 4-token prompt 6 tokens on:
    that row is generated apart from the others (7 positions: every row apart), not given every row the 3 tokens the
    longest prompt leaves (with max_length at the model's positions, answers had been cut to 1 or 2 tokens)."""
    import copy

    model = copy.deepcopy(tiny_lm)
    with torch.no_grad():
        model.transformer.wpe.weight.normal_(0, 3, generator=torch.Generator().manual_seed(1))
    prompts = torch.tensor([4, 1, 2])
    for positions in (16, 9, 7):
        model.config.n_positions = positions
        batch = continue_prompts(model, BATCH, MASK, prompts, 10, None, eos_id=0, pad_id=0, max_length=7)
        assert batch["input_ids"].shape[1] <= 7
        for row, prompt in enumerate(prompts.tolist()):
            length = int(batch["attention_mask"][row].sum())
            assert batch["input_ids"][row, prompt:length].tolist() == greedy_alone(model, row, prompt, 7 - prompt)
        assert (batch["labels"] != UNLABELLED).sum(1).tolist() == (batch["attention_mask"].sum(1) - prompts).tolist()
    model.config.n_positions = 16


def test_the_teacher_answers_each_drawn_row_s_own_prompt_for_sequence_level_kd(tiny_lm):
    tokens = np.array([1, 2, 3, 4, 0, 5, 6, 7, 0, 1, 0, 2, 3, 4, 5, 0])
    offsets, ids = np.array([0, 5, 9, 11, 16]), np.array([7, 8, 9, 10])
    generate = {"sequences": 3, "prompt_tokens": 2, "temperature": 1.0, "top_p": 1.0, "seed": 3}
    prompt_lengths = np.array([3, 1, 1, 4])
    chosen, flat, new_offsets, prompts = sample_continuations(tiny_lm, tokens, offsets, ids, generate, 10, 0, 2,
                                                              torch.device("cpu"), prompt_lengths=prompt_lengths)
    assert len(chosen) == 3 and prompts.tolist() == [prompt_lengths[ids.tolist().index(i)] for i in chosen]
    for i, row_id in enumerate(chosen):  # every row may be drawn, even one no longer than 2 tokens
        row = ids.tolist().index(row_id)
        sequence = flat[new_offsets[i]:new_offsets[i + 1]]
        assert sequence[:prompts[i]].tolist() == tokens[offsets[row]:offsets[row] + prompts[i]].tolist()
        assert prompts[i] < len(sequence) <= 10


def test_the_teacher_s_prompts_are_batched_shortest_first_and_returned_in_id_order(tiny_lm, monkeypatch):
    """Rows drawn in id order with prompts of 1, 6, 1 and 6 tokens go in batches of equal prompts, so no short
    prompt is capped by a long one's room within max_length."""
    from distillery.models import causal_lm

    batches = []
    real = causal_lm.continue_prompts

    def recording(model, input_ids, mask, prompts, *args, **kwargs):
        batches.append(prompts.tolist())
        return real(model, input_ids, mask, prompts, *args, **kwargs)

    monkeypatch.setattr(causal_lm, "continue_prompts", recording)
    tokens = np.array([1, 2, 0, 1, 2, 3, 4, 5, 6, 7, 0, 3, 4, 0, 1, 2, 3, 4, 5, 6, 7, 0])
    offsets, ids = np.array([0, 3, 11, 14, 22]), np.array([7, 8, 9, 10])
    generate = {"sequences": 4, "prompt_tokens": 2, "temperature": 1.0, "top_p": 1.0, "seed": 3}
    chosen, flat, new_offsets, prompts = sample_continuations(tiny_lm, tokens, offsets, ids, generate, 10, 0, 2,
                                                              torch.device("cpu"), np.array([1, 6, 1, 6]))
    assert batches == [[1, 1], [6, 6]]
    assert chosen.tolist() == [7, 8, 9, 10] and prompts.tolist() == [1, 6, 1, 6]
    for row in range(4):
        sequence = flat[new_offsets[row]:new_offsets[row + 1]]
        assert sequence[:prompts[row]].tolist() == tokens[offsets[row]:offsets[row] + prompts[row]].tolist()
