"""Presets: ready-made parameter sets under ``presets/<name>.yaml``, switched to in one command.

A preset holds only what differs from the schema defaults (the sklearn digits MLP); it may start
from another preset with ``base: <name>``. ``python -m distillery.experiments.presets NAME [--set key=value ...]``
(``make preset PRESET=NAME``) merges it over the defaults, applies the ``--set`` overrides, validates
the result and writes it to ``params.yaml`` atomically, recording ``preset: NAME``. The file keeps its layout and
comments (it is read and written back with ruamel.yaml, DVC's YAML library): only the values change, the params it
did not list are added where they differ from their defaults, and those at their default that the committed
params.yaml does not list are left out.
"""
from __future__ import annotations

import argparse
import io
import subprocess
from pathlib import Path

import yaml
from ruamel.yaml import YAML, YAMLError
from ruamel.yaml.comments import CommentedMap, CommentedSeq

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
    if not Path(presets_dir).is_dir():
        raise DistilleryError(f"preset {name!r}: no folder {presets_dir}/ here ({Path.cwd()}): presets are the "
                              "repository's; run this in its root")
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


def _round_trip() -> YAML:
    """ruamel.yaml keeping comments and layout; what it adds is written as PyYAML writes it, since the stages read
    params.yaml with PyYAML (YAML 1.1: ``null``, not an empty value, and ``5.0e-05``, not ``5e-05``, a string
    there)."""
    rt = YAML()
    rt.default_flow_style, rt.width = None, 4096  # lists of scalars in one line, as params.yaml writes them
    rt.representer.add_representer(type(None), lambda r, _: r.represent_scalar("tag:yaml.org,2002:null", "null"))
    rt.representer.add_representer(float, lambda r, value: r.represent_scalar(
        "tag:yaml.org,2002:float", yaml.safe_dump(value).split("\n")[0]))
    return rt


def _styled(value):
    """``value`` as ruamel writes it in params.yaml's style: mappings as blocks, lists of plain values on one line."""
    if isinstance(value, dict):
        block = CommentedMap((key, _styled(item)) for key, item in value.items())
        block.fa.set_block_style()
        return block
    if isinstance(value, list):
        items = CommentedSeq(_styled(item) for item in value)
        if not any(isinstance(item, (dict, list)) for item in value):
            items.fa.set_flow_style()
        return items
    return value


def _update(target: dict, params: dict, defaults: dict, listed: set[str] | None, prefix: str = "") -> None:
    """Make the ruamel mapping ``target`` hold ``params``, keeping its keys' order and comments: a value that is
    the same stays as written, a key ``params`` lacks goes, and one ``target`` lacks is added at the end of its
    block unless it holds its default (``defaults``), which the stages fill in anyway. A key at its default that
    the committed params.yaml does not list (``listed``: its dotted keys; None: keep every key) goes too: an
    earlier preset added it, and going back leaves the file as committed (DVC re-runs a stage whose params block
    gains a key, even at its default)."""
    for key in [key for key in target if key not in params]:
        del target[key]
    for key, value in params.items():
        default = defaults.get(key) if isinstance(defaults, dict) else None
        dotted = prefix + str(key)
        if isinstance(target.get(key), dict) and isinstance(value, dict):
            _update(target[key], value, default, listed, dotted + ".")
            if not target[key] and value == default and not _is_listed(dotted, listed):
                del target[key]
        elif key in target and value == default and not _is_listed(dotted, listed):
            del target[key]
        elif key in target and target[key] != value:
            target[key] = _styled(value)
        elif key not in target and value != default:
            target[key] = _styled(value if not isinstance(value, dict) or not isinstance(default, dict) else
                                  {k: v for k, v in value.items() if v != default.get(k)})


def _is_listed(dotted: str, listed: set[str] | None) -> bool:
    return listed is None or dotted in listed


def _committed_keys() -> set[str] | None:
    """The dotted keys of the committed params.yaml (``git show HEAD:params.yaml``); None when there is none."""
    shown = subprocess.run(["git", "show", "HEAD:params.yaml"], capture_output=True, text=True)
    try:
        committed = yaml.safe_load(shown.stdout) if shown.returncode == 0 else None
    except yaml.YAMLError:
        return None
    return set(_paths(committed)) if isinstance(committed, dict) else None


def _paths(tree: dict, prefix: str = ""):
    """Every key of a nested mapping as a dotted path, blocks (an empty one too) and leaves alike."""
    for key, value in tree.items():
        yield prefix + str(key)
        if isinstance(value, dict):
            yield from _paths(value, f"{prefix}{key}.")


def write_preset(name: str, sets: list[str] = (), out: Path = Path("params.yaml"),
                 presets_dir: Path = PRESETS_DIR) -> dict:
    """Validate preset ``name`` (+ ``sets``) and write it to ``out`` atomically, in the layout and with the
    comments of ``out`` (else, or if it does not read as YAML, of ``params.yaml``); nothing is written on error."""
    params = resolve(name, sets, presets_dir)
    rt = _round_trip()
    document = None
    for template in (Path(out), Path("params.yaml")):  # the first that reads as a mapping
        try:
            document = rt.load(template.read_text()) if template.is_file() else None
        except YAMLError:
            continue
        if isinstance(document, dict):
            break
    if not isinstance(document, dict):
        document = rt.load("{}")
    _update(document, params, validate({}, "the defaults"), _committed_keys())
    command = " ".join(["make preset", f"PRESET={name}", *([f"SET=\"{' '.join(sets)}\""] if sets else [])])
    document.yaml_add_eol_comment(f"`{command}` wrote this file (PRESET=digits-mlp: the defaults)", "preset",
                                  column=30)
    text = io.StringIO()
    rt.dump(document, text)
    if validate(yaml.safe_load(text.getvalue()), str(out)) != params:  # what the stages will read
        raise DistilleryError(f"preset {name!r}: params.yaml would not read back as written (a YAML writer's "
                              "difference): nothing written")
    write_text(out, text.getvalue())
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
