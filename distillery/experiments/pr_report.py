"""What a change did, as Markdown: ``dvc metrics diff``, ``dvc params diff`` and the changed plots vs a revision.

``python -m distillery.experiments.pr_report --rev main`` (``make diff``) prints what the pull-request comment
says; the workflow adds ``--plots plots_diff --output report.md`` and posts it with
``cml comment create``, which uploads the images the Markdown links to.
"""
from __future__ import annotations

import argparse
import filecmp
import json
import os
import subprocess
import sys
from pathlib import Path

from ..errors import DistilleryError


def _dvc(*args: str) -> str:
    result = subprocess.run(["dvc", *args], capture_output=True, text=True)
    if result.returncode != 0:
        raise DistilleryError(f"`dvc {' '.join(args)}` failed:\n{result.stderr.strip() or result.stdout.strip()}")
    return result.stdout.strip()


def sorted_table(markdown: str) -> str:
    """A ``dvc ... diff --md`` table with its rows sorted by path and name (dvc's own order varies run to run)."""
    lines = markdown.splitlines()
    return "\n".join(lines[:2] + sorted(lines[2:]))


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


def diff_markdown(rev: str, plots_dir: Path | None = None, base: Path = Path(".")) -> str:
    """The report: the distillation method, metrics diff, params diff and (with ``plots_dir``) changed plots,
    each vs ``rev``."""
    metrics = sorted_table(_dvc("metrics", "diff", rev, "--md"))
    params = sorted_table(_dvc("params", "diff", rev, "--md"))
    before, after = method_at(rev), method_at(None)
    parts = [
        f"**Distillation method:** {after}" if before == after else
        f"**Distillation method:** {before} (`{rev}`) → {after} (this change)",
        "",
        f"## Metrics: `{rev}` → this change",
        "",
        metrics or "No metric changed.",
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
    return "\n".join(parts)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m distillery.experiments.pr_report",
                                     description=__doc__.split("\n")[0])
    parser.add_argument("--rev", default="main", help="the revision to compare the workspace with (default: main)")
    parser.add_argument("--plots", type=Path, help="render changed plots into this directory and link them")
    parser.add_argument("--output", type=Path, help="write the Markdown here (default: print it)")
    args = parser.parse_args(argv)
    try:
        base = args.output.parent if args.output else Path(".")
        text = diff_markdown(args.rev, args.plots, base)
    except DistilleryError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)
    if args.output:
        from ..io import write_text

        write_text(args.output, text)
    else:
        print(text)


if __name__ == "__main__":
    main()
