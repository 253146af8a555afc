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


PROMPTS = np.array([2, 5, 3, 4, 1, 6, 3, 2, 4, 7, 2, 3])  # each row's prompt tokens (shorter than its row)
PROMPTED = (TOKENS, OFFSETS, PROMPTS)


def word_tokenizer():
    from ..models.test_causal_lm import word_tokenizer as words

    return words()


def test_a_prompted_split_is_scored_on_its_response_tokens_alone(models):
    from distillery.evaluation.causal_lm import score_split

    scores, sequence = score_split(models, PROMPTED, 0, 4, torch.device("cpu"))
    responses = np.array(LENGTHS) - PROMPTS  # each row's tokens after its prompt, the end of text included
    assert np.bincount(sequence, minlength=len(LENGTHS)).tolist() == responses.tolist()
    nll = 0.0
    with torch.no_grad():
        for row, (start, end) in enumerate(zip(OFFSETS[:-1], OFFSETS[1:])):
            ids = torch.from_numpy(TOKENS[start:end])[None]
            log_p = torch.log_softmax(models["kd_seed0"](input_ids=ids).logits[0].double(), -1)
            nll -= sum(float(log_p[p, TOKENS[start + p + 1]]) for p in range(PROMPTS[row] - 1, end - start - 1))
    assert scores["kd_seed0"]["nll"].sum() == pytest.approx(nll, rel=1e-5)


def test_each_model_answers_each_prompt_greedily_and_is_scored_against_the_reference(models):
    from distillery.evaluation.causal_lm import responses, task_scores
    from distillery.evaluation.lm_metrics import exact_match, rouge_l

    tokenizer = word_tokenizer()
    answers = responses(models, PROMPTED, tokenizer, prompts=5, max_length=12, batch_size=2, device=torch.device("cpu"))
    assert set(answers) == {"reference", *models} and all(len(texts) == 5 for texts in answers.values())
    for row in range(5):
        start, prompt = OFFSETS[row], PROMPTS[row]
        reference = tokenizer.decode(TOKENS[start + prompt:OFFSETS[row + 1]], skip_special_tokens=True)
        assert answers["reference"][row] == reference
        for name, model in models.items():  # alone, greedy, up to the end of text or 12 tokens in all
            with torch.no_grad():
                out = model.generate(torch.from_numpy(TOKENS[start:start + prompt])[None], do_sample=False,
                                     attention_mask=torch.ones(1, prompt, dtype=torch.long),
                                     max_new_tokens=12 - prompt, pad_token_id=0, eos_token_id=0)[0, prompt:]
            assert answers[name][row] == tokenizer.decode(out, skip_special_tokens=True)
    cut = responses(models, PROMPTED, tokenizer, prompts=5, max_length=12, batch_size=2, device=torch.device("cpu"),
                    end_of_turn="c")  # a chat template's end of turn: cut, with what follows, from every text
    assert cut == {name: [text.split("c")[0] for text in texts] for name, texts in answers.items()}
    assert cut != answers  # some text did hold it
    scores = task_scores(answers)
    assert set(scores) == set(models)
    np.testing.assert_array_equal(scores["kd_seed0"]["rouge_l"], rouge_l(answers["kd_seed0"], answers["reference"]))
    np.testing.assert_array_equal(scores["hard_seed0"]["exact_match"],
                                  exact_match(answers["hard_seed0"], answers["reference"]))


def test_the_models_sample_from_each_row_s_own_prompt_when_the_split_has_prompts(models):
    judged = judged_samples(models, PROMPTED, 0, 0, prompts=4, max_length=12, batch_size=2, seed=7,
                            device=torch.device("cpu"))
    for values in judged.values():  # rows 0..3 all prompt: up to 12 - prompt tokens each
        assert 1 <= values["sampled_tokens_per_sequence"] <= np.mean(12 - PROMPTS[:4])


def test_prompt_rows_and_their_batches_of_equally_long_prompts():
    from distillery.evaluation.causal_lm import prompt_rows, same_prompt_batches

    offsets = np.array([0, 3, 9, 10, 18, 26])  # sequences of 3, 6, 1, 8 and 8 tokens
    tokens = np.zeros(26, np.int64)
    rows, lengths, new = prompt_rows((tokens, offsets, np.zeros(5, np.int64)), 3, max_length=8)
    prompt_tokens, new_tokens = generation_lengths(8)
    assert (prompt_tokens, new_tokens) == (4, 4) and new == new_tokens
    assert rows.tolist() == [1, 3, 4] and lengths.tolist() == [4, 4, 4]  # longer than the 4-token prompt
    rows, lengths, new = prompt_rows((tokens, offsets, np.array([2, 1, 2, 3, 1])), 4, max_length=8)
    assert rows.tolist() == [0, 1, 2, 3] and lengths.tolist() == [2, 1, 2, 3] and new == 8
    batches = [(chunk.tolist(), length) for chunk, length in same_prompt_batches(rows, lengths, batch_size=1)]
    assert batches == [([1], 1), ([0], 2), ([2], 2), ([3], 3)]
    batches = [(chunk.tolist(), length) for chunk, length in same_prompt_batches(rows, lengths, batch_size=4)]
    assert batches == [([1], 1), ([0, 2], 2), ([3], 3)]
