"""Two revisions' test predictions paired by id: accuracies, the difference and its interval, by hand."""
from __future__ import annotations

import pytest

from distillery.experiments import paired_predictions as P

OLD = """id,label,teacher,kd_seed0,kd_seed1,hard_seed0
9,a,a,a,a,a
10,a,a,a,a,a
11,b,b,a,b,b
12,a,a,a,b,a
13,b,a,a,b,b
"""
NEW = """id,label,teacher,kd_seed0,kd_seed1,hard_seed0
10,a,a,a,a,a
11,b,b,b,b,b
12,a,a,a,a,a
13,b,a,a,b,b
14,b,b,b,b,b
"""


def test_accuracies_on_the_common_rows_by_hand():
    """Rows 10..13 in both. kd before: seed 0 right on 10, 12; seed 1 on 10, 11, 13: per-row means 1, .5, .5, .5
    (0.625). After: seed 0 on 10, 11, 12; seed 1 on all four: 1, 1, 1, .5 (0.875); per-row differences 0, .5, .5, 0."""
    out = P.compare(OLD, NEW, samples=2000, seed=0)
    assert (out["rows"], out["only_old"], out["only_new"], out["relabelled"]) == (4, 1, 1, 0)
    kd = out["models"]["kd"]
    assert (kd["old"], kd["new"], kd["difference"]) == pytest.approx((0.625, 0.875, 0.25))
    assert (kd["old_models"], kd["new_models"], kd["same_predictions"]) == (2, 2, False)
    assert 0 <= kd["ci_low"] <= 0.25 <= kd["ci_high"] <= 0.5  # every resample's mean lies in [0, 0.5]
    teacher, hard = out["models"]["teacher"], out["models"]["hard"]
    assert teacher["same_predictions"] and hard["same_predictions"]
    assert (teacher["old"], teacher["new"], teacher["ci_low"], teacher["ci_high"]) == (0.75, 0.75, 0, 0)
    assert P.verdict(teacher) == "same predictions on every row"


def test_a_clear_gain_excludes_zero_and_noise_holds_it():
    rows = 200
    old = "id,label,kd_seed0\n" + "".join(f"{i},a,{'a' if i % 2 else 'b'}\n" for i in range(rows))
    new = "id,label,kd_seed0\n" + "".join(f"{i},a,a\n" for i in range(rows))
    gain = P.compare(old, new, samples=2000, seed=0)["models"]["kd"]
    assert gain["difference"] == pytest.approx(0.5) and gain["ci_low"] > 0.4
    assert P.verdict(gain) == "**better**: the interval excludes 0"
    swapped = "id,label,kd_seed0\n" + "".join(f"{i},a,{'b' if i % 2 else 'a'}\n" for i in range(rows))
    noise = P.compare(old, swapped, samples=2000, seed=0)["models"]["kd"]  # 100 rows right -> wrong, 100 back
    assert noise["difference"] == 0 and noise["ci_low"] < 0 < noise["ci_high"]
    assert P.verdict(noise) == "the interval holds 0: within what resampling the test rows gives"


def test_the_section_names_the_rows_compared_and_a_relabelled_one():
    relabelled = NEW.replace("12,a,a,a,a,a", "12,b,a,a,a,a")
    text = P.comparison_markdown(P.compare(OLD, relabelled, samples=200, seed=0), "main")
    head, _, header, _, *rows = text.splitlines()
    assert head == ("Test accuracy on the 4 test rows both revisions score, paired by id (students: the mean over "
                    "their seeds); the interval is a paired bootstrap over the rows (the test rows differ: 1 is in "
                    "`main` only and 1 in this change only; compared on the 4 both hold; 1 of them has another label "
                    "in this change).")
    assert header == "| model | main | this change | change | 95 % interval | verdict |"
    assert [row.split(" | ")[0] for row in rows] == ["| teacher", "| distilled", "| hard labels"]
    assert "| 0.6250 (2 seeds) |" in rows[1]
    assert P.comparison_markdown(P.compare(OLD, "id,label,kd_seed0\n99,a,a\n", 10, 0), "main") == \
        "No test row or model is in both revisions: nothing to pair."
