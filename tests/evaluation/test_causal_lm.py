"""Evaluating language models: the teacher's judgement of each model's own samples and how varied they are, checked
against the teacher's and the model's log-probabilities of the very sequences sampled and their bigrams counted."""
import numpy as np
import pytest
import torch

from distillery.data.prepared import UNLABELLED
from distillery.evaluation.causal_lm import generation_lengths, judged_samples
from distillery.models.causal_lm import continue_prompts, padded

from ..methods.test_on_policy_gkd import LENGTHS, OFFSETS, TOKENS, tiny_gpt2


PLAIN = (TOKENS, OFFSETS, np.zeros(len(OFFSETS) - 1, np.int64))  # a split of plain text: no prompts


@pytest.fixture(scope="module")
def models():
    return {"teacher": tiny_gpt2(2, 32).eval(), "kd_seed0": tiny_gpt2(1, 16).eval(),
            "hard_seed0": tiny_gpt2(3, 16).eval()}


def test_the_teacher_scores_the_tokens_each_model_sampled(models):
    cpu = torch.device("cpu")
    judged = judged_samples(models, PLAIN, 0, 0, prompts=5, max_length=16, batch_size=2, seed=7,
                            device=cpu)
    prompt_tokens, new_tokens = generation_lengths(16)  # 8 and 8: rows longer than 8 tokens are prompts
    rows = np.flatnonzero(np.array(LENGTHS) > prompt_tokens)
    assert len(rows) == 0 and judged == {}  # none here: the rows are at most 8 tokens
    judged = judged_samples(models, PLAIN, 0, 0, prompts=5, max_length=8, batch_size=2, seed=7,
                            device=cpu)
    prompt_tokens, new_tokens = generation_lengths(8)  # 4 and 4
    rows = np.flatnonzero(np.array(LENGTHS) > prompt_tokens)[:5]
    for name, model in models.items():  # again by hand, one batch: the same samples from the same seed
        torch.manual_seed(7)
        nll, own_nll, count, pairs = 0.0, 0.0, 0, []
        for start in range(0, len(rows), 2):
            input_ids, mask = padded(torch.from_numpy(TOKENS), OFFSETS, rows[start:start + 2], 0)
            batch = continue_prompts(model, input_ids, mask, prompt_tokens, new_tokens, 1.0, 0, 0)
            with torch.no_grad():
                log_p, log_q = (torch.log_softmax(scorer(input_ids=batch["input_ids"],
                                                         attention_mask=batch["attention_mask"]).logits, -1)
                                for scorer in (models["teacher"], model))
            for p_row, q_row, labels in zip(log_p, log_q, batch["labels"]):
                sampled = []
                for position, token in enumerate(labels.tolist()):
                    if token != UNLABELLED:
                        nll -= float(p_row[position, token])
                        own_nll -= float(q_row[position, token])
                        count += 1
                        sampled.append(token)
                pairs += [tuple(sampled[i:i + 2]) for i in range(len(sampled) - 1)]
        assert judged[name]["teacher_nll_of_samples"] == pytest.approx(nll / count, rel=1e-5)
        assert judged[name]["teacher_perplexity_of_samples"] == pytest.approx(np.exp(nll / count), rel=1e-5)
        assert judged[name]["model_perplexity_of_samples"] == pytest.approx(np.exp(own_nll / count), rel=1e-5)
        assert judged[name]["distinct_bigrams_of_samples"] == len(set(pairs)) / len(pairs)
        assert judged[name]["sampled_tokens_per_sequence"] == pytest.approx(count / len(rows))
        assert 1 <= judged[name]["sampled_tokens_per_sequence"] <= new_tokens
    assert judged["kd_seed0"] != judged["hard_seed0"]
    before = torch.random.get_rng_state()
    again = judged_samples(models, PLAIN, 0, 0, prompts=5, max_length=8, batch_size=2, seed=7, device=cpu)
    assert again == judged and torch.equal(torch.random.get_rng_state(), before)  # seeded; torch's state restored
