"""Presets: ready-made parameter sets under ``presets/<name>.yaml``, switched to in one command.

A preset holds only what differs from the schema defaults (the sklearn digits MLP); it may start
from another preset with ``base: <name>``. ``python -m distillery.experiments.presets NAME [--set key=value ...]``
(``make preset PRESET=NAME``) merges it over the defaults, applies the ``--set`` overrides, validates
the result and writes it to ``params.yaml`` atomically, recording ``preset: NAME``.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import yaml

from ..errors import DistilleryError, exit_on_error
from ..io import write_text
from ..params import validate
from ..schema import deep_merge, unflatten

PRESETS_DIR = Path("presets")  # of the repository, like params.yaml: every command runs from its root


def available(presets_dir: Path = PRESETS_DIR) -> list[str]:
    return sorted(p.stem for p in Path(presets_dir).glob("*.yaml"))


def preset_overrides(name: str, presets_dir: Path = PRESETS_DIR, _seen: tuple = ()) -> dict:
    """The raw overrides of preset ``name``, its ``base`` chain merged in (base first)."""
    path = Path(presets_dir) / f"{name}.yaml"
    if not path.exists():
        raise DistilleryError(f"preset {name!r}: no such preset; available: {', '.join(available(presets_dir))}")
    if name in _seen:
        raise DistilleryError(f"preset {name!r}: its base chain loops ({' -> '.join((*_seen, name))})")
    raw = yaml.safe_load(path.read_text()) or {}
    if not isinstance(raw, dict):
        raise DistilleryError(f"{path}: must be a mapping of params")
    base = raw.pop("base", None)
    return deep_merge(preset_overrides(base, presets_dir, (*_seen, name)), raw) if base else raw


def parse_set(assignment: str) -> dict:
    """``a.b.c=value`` (value read as YAML) as the nested dict ``{"a": {"b": {"c": value}}}``."""
    key, sep, text = assignment.partition("=")
    if not sep or not key or any(not part for part in key.split(".")):
        raise DistilleryError(f"--set {assignment!r}: expected key.path=value")
    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise DistilleryError(f"--set {assignment!r}: the value is not valid YAML: {exc}") from None
    return unflatten({key: value})


def resolve(name: str, sets: list[str] = (), presets_dir: Path = PRESETS_DIR) -> dict:
    """The validated params of preset ``name`` with ``sets`` applied, ``preset: name`` included."""
    raw = preset_overrides(name, presets_dir)
    for assignment in sets:
        raw = deep_merge(raw, parse_set(assignment))
    return validate({**raw, "preset": name}, f"preset {name!r}")


def write_preset(name: str, sets: list[str] = (), out: Path = Path("params.yaml"),
                 presets_dir: Path = PRESETS_DIR) -> dict:
    """Validate preset ``name`` (+ ``sets``) and write it to ``out`` atomically; nothing is written on error."""
    params = resolve(name, sets, presets_dir)
    header = (f"# Written by `python -m distillery.experiments.presets {' '.join([name, *(f'--set {s}' for s in sets)])}`: "
              f"presets/{name}.yaml over the defaults of distillery/params.py.\n"
              "# Edit freely; `make preset PRESET=digits-mlp` goes back to the default setting.\n")
    write_text(out, header + yaml.safe_dump(params, sort_keys=False, allow_unicode=True))
    return params


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m distillery.experiments.presets", description=__doc__.split("\n")[0])
    parser.add_argument("preset", help="preset name (a file presets/<name>.yaml); one of: " + ", ".join(available()))
    parser.add_argument("--set", dest="sets", action="append", default=[], metavar="KEY=VALUE",
                        help="override one param, e.g. --set train.seeds=[0,1] (repeatable)")
    parser.add_argument("--output", default="params.yaml", help="file to write (default: params.yaml)")
    args = parser.parse_args(argv)
    with exit_on_error():
        write_preset(args.preset, args.sets, Path(args.output))
    print(f"wrote {args.output} from preset {args.preset!r}; run `dvc repro` (or `make repro`)")


if __name__ == "__main__":
    main()
