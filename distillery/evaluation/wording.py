"""Numbers in the reports' words."""
from __future__ import annotations


def counted(count: int, noun: str) -> str:
    """A count and its noun, plural unless the count is one: ``1 seed``, ``3 seeds``, ``1,000 prompts``."""
    return f"{count:,} {noun}{'' if count == 1 else 's'}"


def spread_over_seeds(count: int) -> str:
    """What a student's ``mean ± std`` cell is: the spread over its seeds, or one seed's figure."""
    return f"mean ± sample std over {counted(count, 'seed')}" if count > 1 else "one seed's figures (no spread)"
