"""What a change did, as Markdown: ``dvc metrics diff``, ``dvc params diff`` and the changed plots vs a revision.

``python -m distillery.experiments.pr_report --rev main`` (``make diff``) prints what the pull-request comment
says; the workflow adds ``--plots plots_diff --output report.md`` and posts it with
``cml comment create``, which uploads the images the Markdown links to.

A metric whose old and new values are numbers at most ``diff.tolerance`` apart (params.yaml, absolute; or
``--tolerance``) is marked "same": float noise, not a change. One line above the metrics table says whether any
difference exceeds the tolerance.
"""
from __future__ import annotations

import argparse
import filecmp
import json
import math
import os
import subprocess
from pathlib import Path

from ..errors import DistilleryError, exit_on_error


def _dvc(*args: str) -> str:
    result = subprocess.run(["dvc", *args], capture_output=True, text=True)
    if result.returncode != 0:
        raise DistilleryError(f"`dvc {' '.join(args)}` failed:\n{result.stderr.strip() or result.stdout.strip()}")
    return result.stdout.strip()


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def classify_metrics(diff: dict, tolerance: float) -> list[dict]:
    """The rows of ``dvc metrics diff --json`` (``{path: {metric: {"old": .., "new": ..}}}``), sorted by path and
    metric, each with ``status``: ``same`` when old and new are both numbers and ``|new - old| <= tolerance``, else
    ``changed`` (a metric added or removed, a non-number, a larger difference); ``delta`` is ``new - old`` for
    numbers, else None."""
    rows = []
    for path, metrics in sorted((diff or {}).items()):
        for metric, values in sorted((metrics or {}).items()):
            old, new = values.get("old"), values.get("new")
            delta = new - old if _is_number(old) and _is_number(new) else None
            same = delta is not None and abs(delta) <= tolerance
            rows.append({"path": path, "metric": metric, "old": old, "new": new, "delta": delta,
                         "status": "same" if same else "changed"})
    return rows


def _value(value) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)


def _change(row: dict) -> str:
    if row["delta"] is not None:
        return f"{row['delta']:+.3g}"
    if row["old"] is None:
        return "added"
    if row["new"] is None:
        return "removed"
    return "-"


def seed_spread(diff: dict, path: str, metric: str) -> float | None:
    """The larger of the old and new std over seeds of ``metric`` (its ``<metric>_std`` sibling in ``diff``, which
    holds every metric: ``dvc metrics diff --all``), or None when it has none."""
    values = (diff.get(path) or {}).get(f"{metric}_std") or {}
    spreads = [abs(v) for v in (values.get("old"), values.get("new")) if _is_number(v)]
    return max(spreads) if spreads else None


def metrics_markdown(diff: dict, rev: str, tolerance: float, name: str = "diff.tolerance") -> str:
    """The metrics section: one line (all float noise, or how many differences exceed the tolerance) over a table
    of every difference, the noise rows marked "same (|Δ| ≤ tolerance)" and a change no larger than the metric's
    std over seeds said to be within it. ``diff``: ``dvc metrics diff --all --json`` (unchanged metrics are left
    out of the table); ``name`` is where the tolerance came from (the param, or ``--tolerance``)."""
    everything = diff or {}
    diff = {path: {metric: values for metric, values in (metrics or {}).items()
                   if values.get("old") != values.get("new")} for path, metrics in everything.items()}
    rows = classify_metrics(diff, tolerance)
    if not rows:
        return "No metric changed."
    n, exceed = len(rows), sum(row["status"] == "changed" for row in rows)
    noise, bound = n - exceed, f"{tolerance:g}"
    if exceed == 0:
        top = ("The one metric difference is float noise" if n == 1 else
               f"All {n} metric differences are float noise") + \
            f" (|Δ| ≤ {bound}, `{name}`): the results are the same."
    else:
        top = (f"{exceed} of {n} metric difference{'s' if n != 1 else ''} "
               f"exceed{'s' if exceed == 1 else ''} `{name}` ({bound}); {noise} {'is' if noise == 1 else 'are'} "
               "float noise.")
    for row in rows:  # a change no larger than the metric's std over seeds: its spread, else None
        spread = seed_spread(everything, row["path"], row["metric"])
        row["within"] = spread if row["status"] == "changed" and row["delta"] is not None and spread \
            and abs(row["delta"]) <= spread else None
    within = sum(row["within"] is not None for row in rows)
    if within:
        top += (f" {within} of the changes {'is' if within == 1 else 'are'} no larger than the metric's std "
                "over seeds: within the seeds' spread.")
    lines = [top, "", f"| Path | Metric | {rev} | this change | Change | Verdict |", "|---|---|---|---|---|---|"]
    for row in rows:
        verdict = f"same (\\|Δ\\| ≤ {bound})" if row["status"] == "same" else "**changed**"
        if row["within"] is not None:
            verdict += f", within the seeds' std ({row['within']:.3g})"
        lines.append(f"| {row['path']} | {row['metric']} | {_value(row['old'])} | {_value(row['new'])} | "
                     f"{_change(row)} | {verdict} |")
    return "\n".join(lines)


def workspace_tolerance() -> float:
    """``diff.tolerance`` of the workspace's params.yaml."""
    from ..params import load_params

    return load_params()["diff"]["tolerance"]


def sorted_table(markdown: str) -> str:
    """A ``dvc ... diff --md`` table with its rows sorted by path and name (dvc's own order varies run to run), its
    ``workspace`` column called "this change" as in the rest of the report."""
    lines = markdown.splitlines()
    return "\n".join([line.replace("| workspace |", "| this change |") for line in lines[:1]] + lines[1:2]
                     + sorted(lines[2:]))


def changed_plots(rev: str, out_dir: Path) -> dict[str, dict[str, Path]]:
    """Images rendered by ``dvc plots diff REV -o OUT_DIR`` whose file differs between REV and the workspace.

    Returns ``{plot path: {revision: image file}}``; a plot present in one revision only counts as changed.
    """
    rendered = json.loads(_dvc("plots", "diff", rev, "--json", "-o", str(out_dir)) or "{}").get("data", {})
    changed = {}
    for plot, entries in rendered.items():
        images = {e["revisions"][0]: Path(e["url"]) for e in entries if e.get("type") == "image"}
        files = list(images.values())
        if len(files) != 2 or not filecmp.cmp(files[0], files[1], shallow=False):
            changed[plot] = images
    return changed


def method_at(rev: str | None) -> str:
    """The distillation method and the params it reads at ``rev`` (None: the workspace; a commit, branch or
    experiment name), in words."""
    import yaml
    from dvc.scm import SCM, RevError, resolve_rev

    from ..methods import describe
    from ..params import validate

    if rev is None:
        text = Path("params.yaml").read_text()
    else:
        try:
            commit = resolve_rev(SCM("."), rev)  # git's names and DVC experiment names
        except RevError:
            return "unknown (no such revision)"
        shown = subprocess.run(["git", "show", f"{commit}:params.yaml"], capture_output=True, text=True)
        if shown.returncode != 0:
            return "unknown (no params.yaml)"
        text = shown.stdout
    raw = yaml.safe_load(text) or {}
    try:
        return describe(validate(raw)["kd"])
    except Exception:  # an older schema: its method name as written
        return f"`{(raw.get('kd') or {}).get('method', 'kd')}`"


def diff_markdown(rev: str, plots_dir: Path | None = None, base: Path = Path("."),
                  tolerance: float | None = None) -> str:
    """The report: the distillation method, metrics diff, params diff and (with ``plots_dir``) changed plots,
    each vs ``rev``. A metric difference within ``tolerance`` (None: ``diff.tolerance`` of params.yaml) is noise."""
    name = "diff.tolerance" if tolerance is None else "--tolerance"
    tolerance = workspace_tolerance() if tolerance is None else tolerance
    metrics = metrics_markdown(json.loads(_dvc("metrics", "diff", rev, "--all", "--json") or "{}"), rev, tolerance,
                               name)
    params = sorted_table(_dvc("params", "diff", rev, "--md"))
    before, after = method_at(rev), method_at(None)
    parts = [
        f"**Distillation method:** {after}" if before == after else
        f"**Distillation method:** {before} (`{rev}`) → {after} (this change)",
        "",
        f"## Metrics: `{rev}` → this change",
        "",
        metrics,
        "",
        f"## Params: `{rev}` → this change",
        "",
        params or "No param changed.",
        "",
    ]
    if plots_dir is not None:
        changed = changed_plots(rev, plots_dir)
        parts += [f"## Changed plots: `{rev}` → this change", ""]
        if not changed:
            parts += ["No plot changed.", ""]
        for plot, images in changed.items():
            parts += [f"### {plot}", ""]
            for revision, image in sorted(images.items(), key=lambda item: item[0] != rev):  # REV first
                link = Path(os.path.relpath(image.resolve(), base.resolve())).as_posix()
                parts += [f"{revision}:", "", f"![{plot} at {revision}](./{link})", ""]
    else:
        parts += ["(The changed plots: `make diff PLOTS_DIR=<folder>` renders them there, as the pull-request "
                  "comment does.)", ""]
    return "\n".join(parts)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m distillery.experiments.pr_report",
                                     description=__doc__.split("\n")[0])
    parser.add_argument("--rev", default="main", help="the revision to compare the workspace with (default: main)")
    parser.add_argument("--plots", type=Path, help="render changed plots into this directory and link them")
    parser.add_argument("--output", type=Path, help="write the Markdown here (default: print it)")
    parser.add_argument("--tolerance", type=float,
                        help="a metric difference at most this (absolute) is float noise (default: diff.tolerance "
                             "of params.yaml)")
    args = parser.parse_args(argv)
    if not args.rev.strip():
        parser.error("--rev is empty: name the git revision to compare with (make diff REV=main)")
    if args.tolerance is not None and not (math.isfinite(args.tolerance) and args.tolerance >= 0):
        parser.error(f"--tolerance {args.tolerance}: must be a finite number >= 0")
    with exit_on_error():
        base = args.output.parent if args.output else Path(".")
        text = diff_markdown(args.rev, args.plots, base, args.tolerance)
    if args.output:
        from ..io import write_text

        write_text(args.output, text)
    else:
        print(text)


if __name__ == "__main__":
    main()
