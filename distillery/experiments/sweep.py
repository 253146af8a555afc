"""Parameter sweeps through DVC's own experiment queue.

``python -m distillery.experiments.sweep --grid "kd.T=1,2,4 kd.alpha=0.5,0.9; kd.alpha=0" --jobs 2``:

1. refuses when untracked files sit under the pipeline's code or params: queued experiments run
   in temporary copies that take git-tracked files only, so the sweep would silently miss them;
2. checks every grid point against the params schema before anything runs, and refuses a grid over ``data.*``
   when a data file lies outside the repo or is tracked by neither git nor DVC (queued experiments run in temporary
   copies that lack it);
3. reproduces the workspace, so the stages the grid does not touch (teacher, its logits, the
   hard baseline) are computed once and every experiment restores them from the cache;
4. queues each ``;``-separated group with ``dvc exp run --queue -S key=v1,v2 ...`` (DVC expands
   the comma lists into every combination), runs ``dvc queue start -j JOBS`` and waits;
5. prints the log of every failed experiment (``dvc queue logs NAME``), writes the sweep report
   (``distillery.experiments.sweep_report``), which lists every queued experiment, and exits 1 if any failed
   or has no metrics in ``dvc exp show`` (named with what DVC says of it).
"""
from __future__ import annotations

import argparse
import itertools
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

from ..data.sources import in_repo_copy, local_files
from ..errors import DistilleryError, exit_on_error
from ..schema import deep_merge, unflatten

GUARDED_PATHS = ("stages", "distillery", "params.yaml", "dvc.yaml")
# The classic study: T in {1, 2, 4} x alpha in {0.5, 0.9}, plus the hard-label-only ablation alpha = 0.
DEFAULT_GRID = "kd.T=1,2,4 kd.alpha=0.5,0.9; kd.alpha=0"
FINISHED = {"Success", "Failed"}
_QUEUED = re.compile(r"Queued experiment '([^']+)'")


def dvc(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    """Run ``dvc ARGS`` and capture its output; a failure raises ``DistilleryError`` with dvc's message."""
    result = subprocess.run(["dvc", *args], capture_output=True, text=True)
    if check and result.returncode != 0:
        raise DistilleryError(f"`dvc {' '.join(args)}` failed:\n{result.stderr.strip() or result.stdout.strip()}")
    return result


def parse_grid(text: str) -> list[list[str]]:
    """``"a=1,2 b=3; c=0"`` -> ``[["a=1,2", "b=3"], ["c=0"]]``: one ``dvc exp run --queue`` per group. A key may
    be written with DVC's ``++`` (``++kd.dkd.beta=4,8``); the sweep adds it to every key anyway (``queue``)."""
    groups = [[item.removeprefix("++") for item in group.split()] for group in text.split(";") if group.strip()]
    if not groups:
        raise DistilleryError("GRID is empty: give overrides like 'kd.T=1,2,4 kd.alpha=0.5,0.9'")
    for group in groups:
        keys = []
        for item in group:
            key, sep, values = item.partition("=")
            if not sep or not key or not values or "" in values.split(","):
                raise DistilleryError(f"GRID item {item!r}: expected key=value[,value...], e.g. kd.T=1,2,4")
            for value in values.split(","):
                try:
                    yaml.safe_load(value)
                except yaml.YAMLError:
                    raise DistilleryError(
                        f"GRID item {item!r}: {value!r} is not a value (commas separate the values, so a list "
                        "cannot be one here: queue it with `dvc exp run --queue -S key=[...]`)") from None
            keys.append(key)
        twice = sorted({key for key in keys if keys.count(key) > 1})
        if twice:
            raise DistilleryError(f"GRID group {' '.join(group)!r}: {', '.join(twice)} given twice; list every value "
                                  "of a key once (kd.T=1,2,4), or put the other in a group of its own after ';'")
    return groups


def grid_points(groups: list[list[str]]) -> list[dict[str, object]]:
    """Every combination the groups expand to, as ``{"kd.T": 1, "kd.alpha": 0.5}`` (values read as YAML)."""
    points = []
    for group in groups:
        axes = [[(key, yaml.safe_load(v)) for v in values.split(",")]
                for key, _, values in (item.partition("=") for item in group)]
        points.extend(dict(combo) for combo in itertools.product(*axes))
    return points


def check_grid(groups: list[list[str]], params_path: Path) -> list[dict[str, object]]:
    """The grid points, each checked against the params schema (unknown key, bad value -> error)."""
    from ..methods import get_method
    from ..params import validate

    points = grid_points(groups)
    for point in points:
        raw = yaml.safe_load(params_path.read_text())
        for key, value in point.items():
            node = raw
            *parents, leaf = key.split(".")
            for name in parents:
                node = node.setdefault(name, {}) if isinstance(node, dict) else node
            if not isinstance(node, dict):
                raise DistilleryError(f"GRID: {key}: {'.'.join(parents)} is not a param group")
            node[leaf] = value
        refuse_unread(point, get_method(validate(raw, f"GRID point {point}")["kd"]["method"]), f"GRID point {point}")
    return points


def refuse_unread(keys, method, where: str) -> None:
    """Refuse swept or tuned params (``keys``: dotted paths) that ``method`` does not read: its experiments would
    all be the same run, reported as if the param mattered."""
    unread = [key for key in keys if not method.reads(key)]
    if unread:
        raise DistilleryError(f"{where}: kd.method = {method.name!r} does not read {', '.join(unread)} (it reads "
                              f"{', '.join(method.read_params) or 'no kd param'}): every value would give the same "
                              "run; sweep the method's own params, or set kd.method")


def with_point(data: dict, point: dict[str, object]) -> dict:
    """The ``data`` block with a grid point's ``data.*`` values put in."""
    return deep_merge(data, unflatten(point).get("data", {}))


def refuse_data_a_copy_lacks(changed: list[str], datas: list[dict], root: Path = Path(".")) -> None:
    """Experiments that change ``data.*`` (``changed``) re-run ``prepare``, which in DVC's queue runs in a temporary
    copy of the repo: a data file there must be inside the repo and tracked by git or DVC. ``datas``: every ``data``
    block the experiments may run with. Refused, naming the keys and the path."""
    if not changed:
        return
    top = root.resolve()
    paths = {}
    for data in datas:
        paths.update(local_files(data))
    for key, path in paths.items():
        if Path(path).is_absolute():
            continue
        where = (top / path).resolve()
        lead = f"{', '.join(changed)} re-runs prepare, and {key} = {path!r}"
        if not where.is_relative_to(top):
            raise DistilleryError(
                f"{lead} lies outside the repo: queued experiments run in a temporary copy of the repo where that "
                "path does not resolve. Run these points one at a time with `dvc exp run -S ...` in the workspace, "
                "or give the data an absolute path")
        if where.exists() and not in_repo_copy(where, top):
            raise DistilleryError(
                f"{lead} is tracked by neither git nor DVC: queued experiments run in a temporary copy of the repo "
                f"that holds tracked files only. `dvc add {path}` (or `git add` a small file) and commit, or run "
                "these points one at a time with `dvc exp run -S ...` in the workspace")


def untracked_code(root: Path = Path(".")) -> list[str]:
    """Untracked, not ignored files under the pipeline's code or params (``git ls-files --others``)."""
    result = subprocess.run(
        ["git", "ls-files", "--others", "--exclude-standard", "--", *GUARDED_PATHS],
        cwd=root, capture_output=True, text=True,
    )
    if result.returncode != 0:
        raise DistilleryError(f"`git ls-files` failed (is this a git repository?): {result.stderr.strip()}")
    return result.stdout.split()


def refuse_untracked(root: Path = Path(".")) -> None:
    """Stop before queueing anything if a queued copy would miss part of the pipeline."""
    missing = untracked_code(root)
    if missing:
        raise DistilleryError(
            "untracked files under the pipeline's code or params would be missing from every queued "
            "experiment (DVC runs them in temporary copies holding git-tracked files only):\n  "
            + "\n  ".join(missing)
            + "\n`git add` them (or remove them) and run it again"
        )


def queue(groups: list[list[str]]) -> list[str]:
    """Queue each group with ``dvc exp run --queue -S ++key=values ...`` (``++``: a key that params.yaml leaves to
    its default, such as a method's own ``kd.dkd.beta``, is added; one it holds is set); the names DVC gave the
    experiments."""
    names = []
    for group in groups:
        out = dvc("exp", "run", "--queue", *itertools.chain.from_iterable(("-S", f"++{item}") for item in group)).stdout
        names.extend(_QUEUED.findall(out))
    return names


def queue_status() -> dict[str, str]:
    """``dvc queue status`` as ``{name: status}`` (Queued, Running, Success, Failed)."""
    status = {}
    for line in dvc("queue", "status").stdout.splitlines()[1:]:
        fields = line.split()
        if len(fields) >= 4 and fields[0] != "Worker":
            status[fields[1]] = fields[-1]
    return status


def wait(names: list[str], poll_seconds: float) -> dict[str, str]:
    """Poll ``dvc queue status`` until every experiment in ``names`` succeeded or failed."""
    from tqdm import tqdm

    with tqdm(total=len(names), desc="experiments", unit="exp") as bar:
        while True:
            status = queue_status()
            current = {name: status.get(name, "Missing") for name in names}
            done = sum(s in FINISHED for s in current.values())
            bar.update(done - bar.n)
            queue_idle = all(s in FINISHED for s in status.values())
            if done == len(names) or ("Missing" in current.values() and queue_idle):
                return current  # "Missing": removed from the queue (`dvc queue remove`) before it ran
            time.sleep(poll_seconds)


def refuse_a_busy_queue() -> None:
    """Stop before queueing if DVC's queue holds experiments waiting or running: the workers a sweep starts would
    run them with its own, and its report would leave them out."""
    busy = sorted(name for name, state in queue_status().items() if state in ("Queued", "Running"))
    if busy:
        raise DistilleryError(f"DVC's queue already holds {', '.join(busy)} (queued or running: `dvc queue status`), "
                              "which this sweep's workers would run too: wait for them, or `dvc queue remove "
                              "--queued` / `dvc queue kill NAME`, then run the sweep again")


def stop(names: list[str]) -> None:
    """Kill the experiments of ``names`` that are running and take those still queued off the queue: an
    interrupted sweep leaves nothing to run behind it."""
    status = queue_status()
    running = [name for name in names if status.get(name) == "Running"]
    queued = [name for name in names if status.get(name) == "Queued"]
    if running:
        dvc("queue", "kill", *running, check=False)
    if queued:
        dvc("queue", "remove", *queued, check=False)
    print(f"sweep: interrupted: {len(running)} running experiment(s) killed{': ' if running else ''}"
          f"{', '.join(running)}; {len(queued)} queued one(s) removed{': ' if queued else ''}{', '.join(queued)}; "
          "those finished stay in `dvc exp show`", file=sys.stderr)


def run_sweep(grid: str, jobs: int, poll_seconds: float = 5.0) -> tuple[str, dict[str, str]]:
    """Queue and run the grid; return the baseline commit and ``{experiment name: final status}``.

    The experiments hang off the commit checked out when they were queued; commits made while
    they run do not hide them from the report.
    """
    refuse_untracked()
    refuse_a_busy_queue()
    groups = parse_grid(grid)
    points = check_grid(groups, Path("params.yaml"))
    data = yaml.safe_load(Path("params.yaml").read_text()).get("data", {})
    refuse_data_a_copy_lacks(sorted({key for point in points for key in point if key.startswith("data.")}),
                             [with_point(data, point) for point in points])
    print(f"sweep: {len(points)} experiments from {grid!r}", flush=True)
    print("sweep: reproducing the workspace so shared stages run once (dvc repro)", flush=True)
    if subprocess.run(["dvc", "repro"]).returncode != 0:
        raise DistilleryError("`dvc repro` of the workspace failed (output above); nothing was queued")
    baseline = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=True).stdout.strip()
    names = queue(groups)
    if len(names) != len(points):
        dvc("queue", "remove", *names, check=False)
        raise DistilleryError(f"expected {len(points)} queued experiments, dvc queued {len(names)}: {names} "
                              "(taken off the queue again)")
    try:
        start_workers(jobs)
        return baseline, wait(names, poll_seconds)
    except KeyboardInterrupt:
        stop(names)
        raise


def start_workers(jobs: int) -> None:
    """``dvc queue start -j JOBS`` with its output in a file, not a pipe: the workers it starts inherit the
    output and hold it open while they live (an idle second worker lingers), so reading a pipe to its end hangs."""
    with tempfile.TemporaryFile("w+") as out:
        if subprocess.run(["dvc", "queue", "start", "-j", str(jobs)], stdout=out, stderr=out).returncode != 0:
            out.seek(0)
            raise DistilleryError(f"`dvc queue start -j {jobs}` failed:\n{out.read().strip()}")


def report_failures(status: dict[str, str]) -> list[str]:
    """Print ``dvc queue logs`` of every experiment that did not succeed; their names."""
    failed = [name for name, s in status.items() if s != "Success"]
    for name in failed:
        print(f"\n===== experiment {name}: {status[name]} — dvc queue logs {name} =====", file=sys.stderr)
        print(dvc("queue", "logs", name, check=False).stdout, file=sys.stderr)
    if failed:
        print(f"sweep: {len(failed)} of {len(status)} experiments failed: {', '.join(failed)}", file=sys.stderr)
    return failed


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m distillery.experiments.sweep",
                                     description=__doc__.split("\n")[0])
    parser.add_argument("--grid", default=DEFAULT_GRID,
                        help=f"';'-separated groups of key=v1,v2 overrides (default: {DEFAULT_GRID!r})")
    parser.add_argument("--jobs", type=int, default=1, help="queue workers (dvc queue start -j)")
    parser.add_argument("--poll", type=float, default=5.0, help="seconds between `dvc queue status` polls")
    args = parser.parse_args(argv)
    from .sweep_report import write_report

    with exit_on_error():
        try:
            baseline, status = run_sweep(args.grid, args.jobs, args.poll)
        except KeyboardInterrupt:
            sys.exit(130)  # Ctrl-C: stop() said what it stopped
        failed = report_failures(status)
        _, missing = write_report(list(status), rev=baseline, queue_states=status)  # every queued experiment
    unexplained = {name: reason for name, reason in missing.items() if name not in failed}
    for name, reason in unexplained.items():  # succeeded in the queue, yet no metrics: never dropped silently
        print(f"sweep: experiment {name} finished but has no metrics: {reason}", file=sys.stderr)
    sys.exit(1 if failed or unexplained else 0)


if __name__ == "__main__":
    main()
