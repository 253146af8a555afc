"""Human-readable summaries of ``reports/metrics.json``."""
from __future__ import annotations

COLUMNS = [("accuracy", "accuracy", 4), ("macro_f1", "macro-F1", 4), ("nll", "NLL", 4), ("ece", "ECE", 4),
           ("agreement", "agreement", 4)]


def _cell(block: dict, key: str, digits: int) -> str:
    if key not in block:
        return "—"
    value = f"{block[key]:.{digits}f}"
    std = block.get(f"{key}_std")
    return value if std is None else f"{value} ± {std:.{digits}f}"


def metrics_table(metrics: dict) -> str:
    """A Markdown table: one row per model, students as mean ± std over seeds."""
    header = "| model | " + " | ".join(title for _, title, _ in COLUMNS) + " | params |"
    lines = [header, "|" + "---|" * (len(COLUMNS) + 2)]
    for name, block in metrics.items():
        cells = [_cell(block, key, digits) for key, _, digits in COLUMNS]
        lines.append(f"| {name} | " + " | ".join(cells) + f" | {block['params']:,} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    """``python -m distillery.report reports/metrics.json``: print the metrics table."""
    import json
    import sys

    args = sys.argv[1:] if argv is None else argv
    path = args[0] if args else "reports/metrics.json"
    with open(path) as f:
        print(metrics_table(json.load(f)))


if __name__ == "__main__":
    main()
