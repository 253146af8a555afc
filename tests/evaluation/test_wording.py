"""The reports' counts: singular for one, plural otherwise, thousands separated."""
from distillery.evaluation.wording import counted, spread_over_seeds


def test_a_count_takes_the_plural_unless_it_is_one():
    assert [counted(n, "seed") for n in (0, 1, 3)] == ["0 seeds", "1 seed", "3 seeds"]
    assert counted(1000, "prompt") == "1,000 prompts"


def test_one_seed_has_no_spread():
    assert spread_over_seeds(3) == "mean ± sample std over 3 seeds"
    assert spread_over_seeds(1) == "one seed's figures (no spread)"
