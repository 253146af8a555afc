"""Numbers in the reports' words."""
from __future__ import annotations


def counted(count: int, noun: str) -> str:
    """A count and its noun, plural unless the count is one: ``1 seed``, ``3 seeds``, ``1,000 prompts``."""
    return f"{count:,} {noun}{'' if count == 1 else 's'}"


def spread_over_seeds(count: int) -> str:
    """What a student's ``mean ± std`` cell is: the spread over its seeds, or one seed's figure."""
    return f"mean ± sample std over {counted(count, 'seed')}" if count > 1 else "one seed's figures (no spread)"


def evaluated_once(train: dict) -> bool:
    """Whether ``train.select: best`` had one evaluation to choose from: ``train.eval_steps`` not below
    ``train.max_steps`` (the last step's)."""
    return train["select"] == "best" and train["eval_steps"] >= train["max_steps"]


def budget_caveat(train: dict, selections: dict[str, list[dict]] | None, method: str = "kd") -> str | None:
    """A warning beside the verdict when most students of either kind peaked at their last evaluation
    (``train.select: best``): the ceiling ended them while they still improved, so the gap may be a head start; or
    when they were evaluated once only (``train.eval_steps`` not below ``train.max_steps``)."""
    if train["select"] != "best" or not selections:
        return None
    if evaluated_once(train):
        return (f"**Budget.** `train.eval_steps` ({train['eval_steps']:,}) is not below `train.max_steps` "
                f"({train['max_steps']:,}): every student was evaluated once, at its last step, so `train.select: "
                "best` chose nothing and no validation curve says whether they had levelled off. Evaluate more often "
                "than the budget ([docs/fair-comparisons.md](../docs/fair-comparisons.md)).")
    ended = {kind: sum(r["step"] == r["last_step"] for r in records) for kind, records in selections.items()}
    if not any(2 * ended[kind] > len(records) for kind, records in selections.items() if records):
        return None
    counts = " and ".join(f"{ended[kind]} of {len(records)} {'distilled' if kind == 'kd' else 'hard-label'}"
                          for kind, records in selections.items() if records)
    return (f"**Budget.** {counts} students peaked at their last evaluation (step {train['max_steps']:,}): they were "
            f"still improving on validation when `train.max_steps` ended them, so the gap may be `{method}`'s head "
            "start rather than a difference that holds once both kinds level off. Raise `train.max_steps` until most "
            "peak inside it and compare again ([docs/fair-comparisons.md](../docs/fair-comparisons.md)).")
