"""What a change did, as Markdown: ``dvc metrics diff``, ``dvc params diff`` and the changed plots vs a revision.

``python -m distillery.experiments.pr_report --rev main`` (``make diff``) prints what the pull-request comment
says; the workflow adds ``--plots plots_diff --output report.md`` and posts it with
``cml comment create``, which uploads the images the Markdown links to.

A metric whose old and new values are numbers at most ``diff.tolerance`` apart (the compared revision's params.yaml,
absolute, so that a change cannot set its own judge; or ``--tolerance``) is marked "same": float noise, not a change.
One line above the metrics table says whether any difference exceeds the tolerance. The report opens with a warning
when the workspace's results are not this change's (stages out of date) or not committed, and pairs each model's
test predictions of both revisions by id (``paired_predictions``).
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
from . import paired_predictions, revisions


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
    holds every metric: ``dvc metrics diff --all``; a ``headline.json`` figure's is beside the metrics.json figure it
    copies), or None when it has none."""
    if Path(path).name == "headline.json":
        from ..evaluation.headline import source_of

        path, metric = (Path(path).with_name("metrics.json").as_posix(), source_of(metric))
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
    measures = [row for row in rows if not row["metric"].endswith("_std")]  # a `_std` row is a spread over seeds
    n, exceed = len(measures), sum(row["status"] == "changed" for row in measures)
    noise, bound = n - exceed, f"{tolerance:g}"
    if not measures:
        top = "Only spreads over seeds changed."
    elif exceed == 0:
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
    if spreads := sum(row["status"] == "changed" for row in rows if row not in measures):
        top += (f" (Not counted: {spreads} std{'s' if spreads != 1 else ''} over seeds that changed, the rows "
                "ending in `_std`.)")
    lines = [top, "", f"| Path | Metric | {rev} | this change | Change | Verdict |", "|---|---|---|---|---|---|"]
    for row in rows:
        verdict = f"same (\\|Δ\\| ≤ {bound})" if row["status"] == "same" else "**changed**"
        if row["within"] is not None:
            verdict += f", within the seeds' std ({row['within']:.3g})"
        lines.append(f"| {row['path']} | {row['metric']} | {_value(row['old'])} | {_value(row['new'])} | "
                     f"{_change(row)} | {verdict} |")
    return "\n".join(lines)


def tolerance_in(params_text: str | None) -> float:
    """``diff.tolerance`` of a params.yaml's text (the default where there is no file or no such param, as
    validation would give it)."""
    import yaml

    from ..params import validate

    raw = (yaml.safe_load(params_text) or {}) if params_text else {}
    given = (raw.get("diff") or {}).get("tolerance")
    return float(given if _is_number(given) and given >= 0 else validate({})["diff"]["tolerance"])


def sorted_table(markdown: str) -> str:
    """A ``dvc ... diff --md`` table with its rows sorted by path and name (dvc's own order varies run to run), its
    ``workspace`` column called "this change" as in the rest of the report; "" when it has no row."""
    lines = markdown.splitlines()
    if len(lines) < 3:
        return ""
    header = "|".join(" this change " if cell.strip() == "workspace" else cell for cell in lines[0].split("|"))
    return "\n".join([header, lines[1], *sorted(lines[2:])])


def _strings(tree) -> list[str]:
    """Every string in a JSON tree."""
    if isinstance(tree, dict):
        return [text for value in tree.values() for text in _strings(value)]
    if isinstance(tree, list):
        return [text for value in tree for text in _strings(value)]
    return [tree] if isinstance(tree, str) else []


def _vega_rows(entry: dict) -> dict[str, list]:
    """An interactive (vega) plot's data rows per revision, each cut to the fields its spec draws (a confusion
    matrix of one seed reads two columns of a file that holds every model's), in a fixed order."""
    spec = {key: value for key, value in (entry.get("content") or {}).items() if key != "data"}
    values = (entry.get("content") or {}).get("data", {}).get("values", [])
    fields = set().union(*(row.keys() for row in values)) if values else set()
    drawn = (fields & set(_strings(spec))) - {"rev"} or fields - {"rev"}
    rows: dict[str, list] = {revision: [] for revision in entry.get("revisions", [])}
    for row in values:
        rows.setdefault(row.get("rev"), []).append(json.dumps({k: row.get(k) for k in sorted(drawn)}))
    return {revision: sorted(cut) for revision, cut in rows.items()}


def changed_plots(rev: str, out_dir: Path) -> tuple[dict[str, dict[str, Path]], list[dict]]:
    """The plots of ``dvc plots diff REV -o OUT_DIR`` that differ between REV and the workspace, and the ones DVC
    could not read.

    Returns ``({plot: {revision: image file}}, errors)``: an image plot is changed when its files differ, an
    interactive one (``{}``: no image to show) when its data rows do; a plot present in one revision only counts as
    changed. ``errors``: DVC's, ``{"name", "rev", "type", "msg"}`` each; a plot with one is left out of the
    changed ones (it is unknown whether it changed)."""
    shown = json.loads(_dvc("plots", "diff", rev, "--json", "-o", str(out_dir)) or "{}")
    errors = shown.get("errors") or []
    unreadable = {error.get("name") for error in errors}
    changed = {}
    for plot, entries in shown.get("data", {}).items():
        if plot in unreadable:
            continue
        images = {e["revisions"][0]: Path(e["url"]) for e in entries if e.get("type") == "image"}
        if images:
            files = list(images.values())
            if len(files) != 2 or not filecmp.cmp(files[0], files[1], shallow=False):
                changed[plot] = images
            continue
        rows = [_vega_rows(e) for e in entries]
        per_revision = {revision: values for r in rows for revision, values in r.items()}
        if len(per_revision) != 2 or len({json.dumps(v) for v in per_revision.values()}) != 1:
            changed[plot] = {}
    return changed, errors


def unreadable_markdown(errors: list[dict], rev: str) -> list[str]:
    """A bullet per plot DVC could not read, with what to do: a revision's outputs absent from the DVC cache are
    pulled (``make pull``) or made again (``dvc repro`` at that revision)."""
    lines = []
    for error in errors:
        where = f"`{error['rev']}`" if error.get("rev") not in (None, "workspace") else "this change"
        lines.append(f"- {error.get('name') or 'a plot'} at {where}: {error.get('type', 'error')}: "
                     f"{error.get('msg', '').strip()}")
    if lines:
        lines.append(f"\n(Outputs absent from this machine's DVC cache: `make pull` fetches them from the team's "
                     f"remote, or check out `{rev}` and run `dvc repro` to make them.)")
    return lines


def method_in(params_text: str | None) -> str:
    """The distillation method and the params it reads in a params.yaml's text (None: no such file), in words."""
    import yaml

    from ..methods import describe
    from ..params import validate

    if params_text is None:
        return "unknown (no params.yaml)"
    raw = yaml.safe_load(params_text) or {}
    try:
        return describe(validate(raw)["kd"])
    except Exception:  # an older schema: its method name as written
        return f"`{(raw.get('kd') or {}).get('method', 'kd')}`"


def state_warnings() -> list[str]:
    """Paragraphs opening the report when the workspace's results are not what this change makes (stages out of
    date: its metrics are the earlier setting's) or not committed (a pull request shows what is committed)."""
    warnings = []
    if stale := revisions.stale_stages():
        changed = revisions.changed_params(stale)
        warnings.append(
            f"**Stale results.** `dvc status` finds the stage{'s' if len(stale) > 1 else ''} "
            f"{', '.join(f'`{s}`' for s in stale)} out of date"
            + (f" (changed: {', '.join(f'`{c}`' for c in changed)})" if changed else "")
            + ": the metrics and plots below are from before that change, not this change's. Run `make repro` "
            "(then commit what it writes), and `make diff` again.")
    if uncommitted := revisions.uncommitted_results():
        shown = ", ".join(f"`{path}`" for path in uncommitted[:8]) + (", ..." if len(uncommitted) > 8 else "")
        warnings.append(
            f"**Not committed.** The workspace's results differ from the commit checked out in "
            f"{len(uncommitted)} file{'s' if len(uncommitted) > 1 else ''}: {shown}. A pull request shows what is "
            "committed: commit them with the change. (On a pull request's CI, after `make repro`, this says the "
            "committed results are not what the committed params and code make.)")
    return warnings


def paired_section(rev: str, commit: str, ev: dict) -> list[str]:
    """The test predictions of ``rev`` (at ``commit``) and the workspace paired by id, as a section, resampled as
    the ``evaluate`` params ``ev`` say; nothing when either has none (a language model's pipeline)."""
    old = revisions.file_at(commit, paired_predictions.PREDICTIONS)
    new_path = Path(paired_predictions.PREDICTIONS)
    if old is None or not new_path.exists():
        return []
    comparison = paired_predictions.compare(old, new_path.read_text(), ev["bootstrap_samples"], ev["bootstrap_seed"])
    return [f"## Test predictions, paired: `{rev}` → this change", "",
            paired_predictions.comparison_markdown(comparison, rev), ""]


def diff_markdown(rev: str, plots_dir: Path | None = None, base: Path = Path("."),
                  tolerance: float | None = None) -> str:
    """The report: warnings on the workspace's results, the distillation method, metrics diff, the test predictions
    paired, params diff and (with ``plots_dir``) changed plots, each vs ``rev``. A metric difference within
    ``tolerance`` (None: ``diff.tolerance`` of ``rev``'s params.yaml) is noise."""
    from ..methods import describe
    from ..params import load_params

    commit = revisions.commit_of(rev)  # an unknown revision is named before anything runs
    base_params, workspace = revisions.file_at(commit, "params.yaml"), load_params()
    if tolerance is None:
        tolerance, name = tolerance_in(base_params), f"diff.tolerance of {rev}"
        here = workspace["diff"]["tolerance"]
        notes = ([f"This change sets `diff.tolerance` to {here:g}; the comparison uses `{rev}`'s {tolerance:g}, so "
                  "that a change does not set the bar it is judged by (`make diff TOLERANCE=` overrides it)."]
                 if here != tolerance else [])
    else:
        name, notes = "--tolerance", []
    metrics = metrics_markdown(json.loads(_dvc("metrics", "diff", rev, "--all", "--json") or "{}"), rev, tolerance,
                               name)
    params = sorted_table(_dvc("params", "diff", rev, "--md"))
    before, after = method_in(base_params), describe(workspace["kd"])
    parts = [*(f"{warning}\n" for warning in state_warnings()),
             f"**Distillation method:** {after}" if before == after else
             f"**Distillation method:** {before} (`{rev}`) → {after} (this change)",
             "",
             f"## Metrics: `{rev}` → this change",
             "",
             metrics,
             "",
             *(f"{note}\n" for note in notes),
             *paired_section(rev, commit, workspace["evaluate"]),
             f"## Params: `{rev}` → this change",
             "",
             params or "No param changed.",
             ""]
    if plots_dir is not None:
        changed, errors = changed_plots(rev, plots_dir)
        parts += [f"## Changed plots: `{rev}` → this change", ""]
        if not changed and not errors:
            parts += ["No plot changed.", ""]
        for plot, images in changed.items():
            parts += [f"### {plot}", ""]
            if not images:
                parts += [f"Its data changed (an interactive plot: `dvc plots diff {rev}` draws both).", ""]
            for revision, image in sorted(images.items(), key=lambda item: item[0] != rev):  # REV first
                link = Path(os.path.relpath(image.resolve(), base.resolve())).as_posix()
                parts += [f"{revision}:", "", f"![{plot} at {revision}](./{link})", ""]
        if errors:
            parts += ["### Plots DVC could not read", "", *unreadable_markdown(errors, rev), ""]
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
                             "of the --rev revision's params.yaml)")
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
