import math

import numpy as np
import pytest
import torch

from distillery.evaluation import lm_metrics as L

LN2, LN3 = math.log(2), math.log(3)

# two tokens, V = 3
#   token 0: student (0, 0, 0)      -> p_s = (1/3, 1/3, 1/3), target 2; teacher (ln 2, 0, 0) -> p_t = (.5, .25, .25)
#   token 1: student (0, ln 3, 0)   -> p_s = (.2, .6, .2),    target 1; teacher (0, 0, 0)    -> p_t = (1/3, 1/3, 1/3)
STUDENT = torch.tensor([[0.0, 0.0, 0.0], [0.0, LN3, 0.0]], dtype=torch.float64)
TEACHER = torch.tensor([[LN2, 0.0, 0.0], [0.0, 0.0, 0.0]], dtype=torch.float64)
TARGETS = torch.tensor([2, 1])


def test_score_tokens_by_hand():
    s = L.score_tokens(STUDENT, TARGETS, TEACHER)
    # nll: -ln(1/3) = ln 3 = 1.0986122886681098; -ln(.6) = ln(5/3) = 0.5108256237659907
    assert s["nll"] == pytest.approx([1.0986122886681098, 0.5108256237659907], rel=1e-12)
    # argmax: token 0 is a three-way tie -> id 0 (lowest), target 2: wrong; token 1 -> id 1 = target: right
    assert s["correct"].tolist() == [False, True]
    # teacher argmax: 0 and 0 (tie -> lowest); student argmax: 0 and 1
    assert s["agree"].tolist() == [True, False]
    # kl token 0: .5 ln(.5/(1/3)) + 2 * .25 ln(.25/(1/3)) = .5 (ln 1.5 + ln .75) = .5 ln(9/8) = 0.05889151782819173
    # kl token 1: 1/3 (ln((1/3)/.2) * 2 + ln((1/3)/.6)) = 1/3 ln(125/81)            = 0.14462152754328744
    assert s["kl"] == pytest.approx([0.05889151782819173, 0.14462152754328744], rel=1e-12)
    assert s["nll"].dtype == np.float64 and s["kl"].dtype == np.float64
    assert set(L.score_tokens(STUDENT, TARGETS)) == {"nll", "correct"}  # no teacher, no agree/kl


def test_lm_metrics_by_hand():
    m = L.lm_metrics(L.score_tokens(STUDENT, TARGETS, TEACHER))
    # nll = (ln 3 + ln(5/3)) / 2 = ln(5) / 2 = 0.8047189562170501; perplexity = exp(ln 5 / 2) = sqrt 5 = 2.23606797749979
    assert m["nll"] == pytest.approx(0.8047189562170501, rel=1e-12)
    assert m["perplexity"] == pytest.approx(2.23606797749979, rel=1e-12)
    assert m["next_token_accuracy"] == 0.5
    assert m["teacher_agreement"] == 0.5
    # (0.05889151782819173 + 0.14462152754328744) / 2 = 0.10175652268573959
    assert m["kl_from_teacher"] == pytest.approx(0.10175652268573959, rel=1e-12)
    assert m["tokens"] == 2
    assert set(L.lm_metrics(L.score_tokens(STUDENT, TARGETS))) == {"nll", "perplexity", "next_token_accuracy", "tokens"}


def test_lm_metrics_weights_tokens_not_sequences():
    # three tokens with nll 1, 1, 4 -> mean 2 (a mean of per-sequence means over [1, 1] and [4] would give 2.5)
    m = L.lm_metrics({"nll": np.array([1.0, 1.0, 4.0]), "correct": np.array([True, False, False])})
    assert m["nll"] == 2.0
    assert m["perplexity"] == pytest.approx(math.exp(2.0))
    assert m["next_token_accuracy"] == pytest.approx(1 / 3)
    with pytest.raises(ValueError):
        L.lm_metrics({"nll": np.array([]), "correct": np.array([], bool)})


def numpy_log_softmax(x):
    x = np.asarray(x, dtype=np.float64)
    m = x.max(axis=1, keepdims=True)
    return x - m - np.log(np.exp(x - m).sum(axis=1, keepdims=True))


def test_score_tokens_matches_numpy():
    rng = np.random.default_rng(0)
    student = rng.normal(size=(64, 11)).astype(np.float32) * 3
    teacher = rng.normal(size=(64, 11)).astype(np.float32) * 3
    teacher[:8] = student[:8]  # some agreeing rows
    targets = rng.integers(0, 11, size=64)
    s = L.score_tokens(torch.from_numpy(student), torch.from_numpy(targets), torch.from_numpy(teacher))
    log_s, log_t = numpy_log_softmax(student), numpy_log_softmax(teacher)
    assert s["nll"] == pytest.approx(-log_s[np.arange(64), targets], rel=1e-12)
    assert np.array_equal(s["correct"], student.argmax(1) == targets)
    assert np.array_equal(s["agree"], student.argmax(1) == teacher.argmax(1))
    assert s["kl"] == pytest.approx((np.exp(log_t) * (log_t - log_s)).sum(1), rel=1e-9, abs=1e-15)
    assert s["nll"].dtype == np.float64 and s["kl"].dtype == np.float64  # float32 logits, float64 scores
    assert (s["kl"] >= 0).all() and (s["kl"][:8] < 1e-12).all()


def test_kl_is_never_negative():
    # a teacher 1e-9 away from the student: KL ~ 1e-18, where float64 rounding alone gives about half the
    # rows a sum near -1e-16
    gen = torch.Generator().manual_seed(0)
    student = torch.randn(2000, 5, dtype=torch.float64, generator=gen)
    teacher = student + 1e-9 * torch.randn(2000, 5, dtype=torch.float64, generator=gen)
    kl = L.score_tokens(student, torch.zeros(2000, dtype=torch.long), teacher)["kl"]
    assert (kl >= 0).all() and kl.max() < 1e-12


def test_score_tokens_argmax_ties_take_the_lowest_id():
    logits = torch.tensor([[0.0, 1.0, 1.0], [0.0, 1.0, 1.0], [2.0, 2.0, 2.0]])
    s = L.score_tokens(logits, torch.tensor([1, 2, 0]), logits.flip(1))
    assert s["correct"].tolist() == [True, False, True]
    # teacher rows (1, 1, 0), (1, 1, 0), (2, 2, 2): argmax 0, 0, 0 against the student's 1, 1, 0
    assert s["agree"].tolist() == [False, False, True]


def test_kl_ignores_tokens_the_teacher_rules_out():
    # teacher (0, -inf, 0) -> p_t = (.5, 0, .5); student uniform: KL = 2 * .5 ln(.5/(1/3)) = ln 1.5 = 0.4054651081081644
    s = L.score_tokens(torch.zeros(1, 3), torch.tensor([0]), torch.tensor([[0.0, -math.inf, 0.0]]))
    assert s["kl"] == pytest.approx([0.4054651081081644], rel=1e-12)


def test_score_tokens_refuses_bad_shapes_and_targets():
    with pytest.raises(ValueError, match=r"\(2, 3\)"):
        L.score_tokens(STUDENT, torch.tensor([0, 1, 2]))
    with pytest.raises(ValueError, match=r"\(2, 4\)"):
        L.score_tokens(STUDENT, TARGETS, torch.zeros(2, 4))
    with pytest.raises(ValueError, match="-100"):
        L.score_tokens(STUDENT, torch.tensor([0, -100]))
    with pytest.raises(ValueError, match=r"\[0, 3\)"):
        L.score_tokens(STUDENT, torch.tensor([0, 3]))


def test_sequence_sums():
    values = np.array([1.0, 2.0, 3.0, 4.0, 5.0])
    sequence = np.array([0, 0, 2, 2, 2])
    # sequence 0: 1 + 2 = 3; 1: none; 2: 3 + 4 + 5 = 12; 3: none
    assert L.sequence_sums(values, sequence, 4).tolist() == [3.0, 0.0, 12.0, 0.0]
    assert L.sequence_sums(np.ones(5), sequence, 3).tolist() == [2.0, 0.0, 3.0]  # tokens per sequence
    with pytest.raises(ValueError):
        L.sequence_sums(values, sequence, 2)  # index 2 is past n_sequences
    with pytest.raises(ValueError):
        L.sequence_sums(values, sequence[:4], 3)


# 2 seeds x 3 sequences of 2, 3 and 5 tokens (per-sequence NLL sums)
NLL_A = np.array([[1.0, 2.0, 3.0], [2.0, 2.0, 4.0]])
NLL_B = np.array([[2.0, 2.0, 5.0], [3.0, 3.0, 5.0]])
TOKENS = np.array([2, 3, 5])


def test_bootstrap_difference_by_hand():
    out = L.paired_nll_bootstrap(NLL_A, NLL_B, TOKENS, samples=2000, seed=0)
    # A: (1+2+3+2+2+4) = 14, B: (2+2+5+3+3+5) = 20 over 2 seeds x 10 tokens -> (14 - 20) / 20 = -0.3
    # (the mean of per-sequence per-token means would be (-2/4 - 1/6 - 3/10) / 3 = -0.3222)
    assert out["difference"] == pytest.approx(-0.3, rel=1e-12)
    assert out["perplexity_ratio"] == pytest.approx(0.7408182206817179, rel=1e-12)  # exp(-0.3)
    assert out["ci_low"] <= out["difference"] <= out["ci_high"]
    # A is better on every sequence (seed-pooled differences -2, -1, -3): every resample is below 0
    assert out["ci_high"] < 0
    # a resample's extremes: all sequence 1 -> -1 / (2 * 3) = -1/6; all sequence 2 -> -3 / (2 * 5) = -0.3;
    # all sequence 0 -> -2 / (2 * 2) = -0.5
    assert -0.5 <= out["ci_low"] and out["ci_high"] <= -1 / 6


def test_bootstrap_interval_against_the_binomial():
    # one token per sequence, one seed: A's NLL is 1 lower on 10 of 100 sequences, so the pooled difference
    # is -0.1 and a resample's is -Binomial(100, .1)/100, whose 2.5 % / 97.5 % quantiles are -0.16 / -0.04
    a = np.zeros((1, 100))
    a[0, :10] = -1.0
    out = L.paired_nll_bootstrap(a, np.zeros((1, 100)), np.ones(100), samples=4000, seed=0)
    assert out["difference"] == pytest.approx(-0.1)
    assert out["ci_low"] == pytest.approx(-0.16, abs=0.011)
    assert out["ci_high"] == pytest.approx(-0.04, abs=0.011)


def test_bootstrap_mixed_signs_contains_difference():
    rng = np.random.default_rng(1)
    tokens = rng.integers(5, 50, size=200)
    b = rng.gamma(2.0, 1.0, size=(3, 200)) * tokens
    a = b + rng.normal(0.0, 0.5, size=(3, 200)) * tokens  # no true difference
    out = L.paired_nll_bootstrap(a, b, tokens, samples=3000, seed=2)
    assert out["ci_low"] < out["difference"] < out["ci_high"]
    assert out["ci_low"] < 0 < out["ci_high"]


def test_identical_models_give_a_zero_interval():
    out = L.paired_nll_bootstrap(NLL_A, NLL_A.copy(), TOKENS, samples=500, seed=0)
    assert out == {"difference": 0.0, "ci_low": 0.0, "ci_high": 0.0, "perplexity_ratio": 1.0}


def test_one_draw_serves_every_seed():
    # seed 0: A worse by 1 on each sequence, seed 1: better by 1 -> every sequence's pooled difference is 0;
    # only a draw shared by the seeds keeps every resample at 0
    a = np.array([[1.0, 1.0, 1.0, 1.0], [0.0, 0.0, 0.0, 0.0]])
    out = L.paired_nll_bootstrap(a, a[::-1].copy(), np.array([1, 2, 3, 4]), samples=500, seed=0)
    assert (out["ci_low"], out["ci_high"]) == (0.0, 0.0)


def test_resamples_weight_by_their_own_tokens():
    # each sequence's seed-pooled difference is -0.25 x seeds x its tokens: every resample's token-weighted
    # difference is exactly -0.25, whatever it draws (dividing by the full set's tokens would not be)
    tokens = np.array([1, 2, 4, 8, 16])
    a = np.stack([-0.25 * tokens, -0.25 * tokens]).astype(np.float64)
    out = L.paired_nll_bootstrap(a, np.zeros_like(a), tokens, samples=500, seed=0)
    assert out["difference"] == -0.25
    assert out["ci_low"] == pytest.approx(-0.25, rel=1e-12) and out["ci_high"] == pytest.approx(-0.25, rel=1e-12)


def test_bootstrap_is_deterministic_given_a_seed():
    rng = np.random.default_rng(3)
    a, b = rng.gamma(2.0, 1.0, size=(2, 2, 50))
    tokens = rng.integers(1, 20, size=50)
    first = L.paired_nll_bootstrap(a, b, tokens, samples=1000, seed=7)
    assert L.paired_nll_bootstrap(a, b, tokens, samples=1000, seed=7) == first
    assert L.paired_nll_bootstrap(a, b, tokens, samples=1000, seed=8) != first


def test_bootstrap_chunks_like_one_draw():
    # more resamples than one chunk (4e6 // 100000 sequences = 40): the chunks join into one interval
    n = 100_000
    a = np.zeros((1, n))
    a[0, : n // 10] = -1.0
    out = L.paired_nll_bootstrap(a, np.zeros((1, n)), np.ones(n), samples=100, seed=0)
    # sd of a resample: sqrt(.1 * .9 / 1e5) = 0.00095 -> the 95 % interval is about -0.1 +- 0.0019
    assert out["ci_low"] == pytest.approx(-0.1019, abs=0.0006)
    assert out["ci_high"] == pytest.approx(-0.0981, abs=0.0006)


def test_a_single_resample_is_a_point_interval():
    # 1e6 sequences: chunks of 4e6 // 1e6 = 4 resamples, of which only the one asked for is drawn
    n = 1_000_000
    a = np.zeros((1, n))
    a[0, : n // 10] = -1.0
    out = L.paired_nll_bootstrap(a, np.zeros((1, n)), np.ones(n), samples=1, seed=0)
    assert out["ci_low"] == out["ci_high"]


def test_bootstrap_refusals():
    with pytest.raises(ValueError, match=r"\(2, 3\).*\(2, 2\)"):
        L.paired_nll_bootstrap(NLL_A, NLL_B[:, :2], TOKENS, samples=10, seed=0)
    with pytest.raises(ValueError, match=r"\(2,\)"):
        L.paired_nll_bootstrap(NLL_A, NLL_B, TOKENS[:2], samples=10, seed=0)
    with pytest.raises(ValueError, match=r"\(3,\)"):
        L.paired_nll_bootstrap(NLL_A[0], NLL_B[0], TOKENS, samples=10, seed=0)  # (sequences,) without seeds
    with pytest.raises(ValueError, match=r"tokens \(3,\)"):
        L.paired_nll_bootstrap(NLL_A, NLL_B, np.array([2, 0, 5]), samples=10, seed=0)
    with pytest.raises(ValueError, match="samples"):
        L.paired_nll_bootstrap(NLL_A, NLL_B, TOKENS, samples=0, seed=0)
    with pytest.raises(ValueError, match=r"\(0, 3\)"):
        L.paired_nll_bootstrap(np.zeros((0, 3)), np.zeros((0, 3)), TOKENS, samples=10, seed=0)


def test_gap_closure():
    assert L.gap_closure(teacher=10.0, kd=12.0, hard=14.0) == 0.5
    assert L.gap_closure(teacher=10.0, kd=10.0, hard=14.0) == 1.0  # KD matches the teacher
    assert L.gap_closure(teacher=10.0, kd=14.0, hard=14.0) == 0.0  # KD no better than hard labels
    assert L.gap_closure(teacher=10.0, kd=16.0, hard=14.0) == -0.5  # KD worse than hard labels
    assert L.gap_closure(teacher=10.0, kd=9.0, hard=14.0) == 1.25  # KD beyond the teacher
    assert L.gap_closure(teacher=10.0, kd=12.0, hard=10.0) is None  # no gap
    assert L.gap_closure(teacher=5.864, kd=5.234, hard=4.830) is None  # a helper's weaker teacher: it read 0.39


def test_rouge_l_is_the_f1_of_the_longest_common_word_subsequence():
    from distillery.evaluation.lm_metrics import rouge_l

    # LCS of "the cat sat on mat" and "the cat is on the mat": the cat on mat, 4 of 5 and of 6 words
    precision, recall = 4 / 5, 4 / 6
    scores = rouge_l(["the cat sat on mat", "Cats!", "", "a b", "dog"],
                     ["the cat is on the mat", "cat", "", "b a", "cat"])
    np.testing.assert_allclose(scores, [2 * precision * recall / (precision + recall), 1.0, 0.0, 0.5, 0.0])
    with pytest.raises(ValueError):  # one reference a prediction
        rouge_l(["a"], ["a", "b"])


def test_exact_match_ignores_case_and_spacing_only():
    from distillery.evaluation.lm_metrics import exact_match

    assert exact_match([" Positive ", "pos", "a  b", "a b."], ["positive", "positive", "a b", "a b"]).tolist() == \
        [1.0, 0.0, 1.0, 0.0]
