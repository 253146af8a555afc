"""The local files a ``data`` block reads, and what they held when a stage read them.

DVC re-runs a stage when a dependency in dvc.yaml changes, and dvc.yaml's dependencies are fixed paths: a file
that params.yaml names (``data.source: file:wine.csv``) is not one of them, so editing it re-runs nothing. The
stages that read such files (``prepare``, and ``transfer`` for ``data.transfer.source`` and the rest rows) record
each file's sha256 in their ``meta.json`` (``source_record``); ``python -m distillery.data.sources``, which
``make repro`` runs before ``dvc repro``, re-runs the stage whose files changed since, and ``make export`` refuses
while one has.
"""
from __future__ import annotations

import hashlib
import json
import subprocess
from pathlib import Path

from ..errors import DistilleryError, exit_on_error

RECORD_KEY = "source_files"
PREPARE_READS = ("data.source", "data.files")  # the param names of the files prepare reads
# the stages that read files named in params, and the meta.json where each records them
STAGE_RECORDS = {"prepare": Path("data/prepared/meta.json"), "transfer": Path("data/transfer/meta.json")}


def local_files(data: dict) -> dict[str, str]:
    """The local files a ``data`` block reads: param name -> path as written (``data.source: file:...`` or
    ``npz:...``, each of ``data.files``, ``data.transfer.source``)."""
    paths = {}
    sources = {"data.source": data.get("source"), "data.transfer.source": (data.get("transfer") or {}).get("source")}
    for key, spec in sources.items():
        kind, _, rest = str(spec or "").partition(":")
        if kind in ("file", "npz"):
            paths[key] = rest
    paths.update({f"data.files.{split}": path for split, path in (data.get("files") or {}).items()})
    return paths


def sha256(path: Path) -> str:
    """The file's SHA-256, read in blocks of 1 MiB."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def source_record(data: dict, keys: tuple[str, ...], root: Path = Path(".")) -> dict:
    """``{"source_files": {path as written: {"sha256": ..., "bytes": ...}}}`` for the local files of ``data`` whose
    param name starts with one of ``keys``; ``{}`` when there are none (a stage's record is then as before)."""
    files = {}
    for key, path in local_files(data).items():
        if key.startswith(keys) and (Path(root) / path).is_file():
            files[path] = {"sha256": sha256(Path(root) / path), "bytes": (Path(root) / path).stat().st_size}
    return {RECORD_KEY: files} if files else {}


def changed_files(meta_file: Path, root: Path = Path(".")) -> list[str]:
    """The files a stage's ``meta.json`` recorded that hold something else now, each said in a few words; [] when
    the stage has not run or recorded none."""
    if not Path(meta_file).is_file():
        return []
    changed = []
    for path, was in json.loads(Path(meta_file).read_text()).get(RECORD_KEY, {}).items():
        where = Path(root) / path
        if not where.is_file():
            changed.append(f"{path} is gone")
        elif (now := sha256(where)) != was["sha256"]:
            changed.append(f"{path} changed (sha256 {was['sha256'][:12]}… then, {now[:12]}… now)")
    return changed


def stale_stages(root: Path = Path(".")) -> dict[str, list[str]]:
    """Stage -> the files it read that changed since (only the stages with any)."""
    stale = {stage: changed_files(Path(root) / record, root) for stage, record in STAGE_RECORDS.items()}
    return {stage: changes for stage, changes in stale.items() if changes}


def in_repo_copy(path: Path, root: Path = Path(".")) -> bool:
    """Whether a copy of the repo at ``root`` (a clone, or DVC's queued experiment) holds ``path``, a path inside
    it: git tracks it, or DVC does (a ``.dvc`` file beside it or beside a folder above it)."""
    relative = Path(path).resolve().relative_to(Path(root).resolve())
    listed = subprocess.run(["git", "ls-files", "--error-unmatch", "--", str(relative)], cwd=root,
                            capture_output=True)
    return listed.returncode == 0 or any((Path(root) / part.parent / f"{part.name}.dvc").exists()
                                         for part in [relative, *relative.parents[:-1]])


def main() -> None:
    """Re-run (``dvc repro --force --single-item``) each stage whose data files changed since it read them."""
    with exit_on_error():
        for stage, changes in stale_stages().items():
            print(f"{stage}: {'; '.join(changes)} since it ran (DVC does not watch the files params.yaml names): "
                  f"running it again", flush=True)
            if subprocess.run(["dvc", "repro", "--force", "--single-item", stage]).returncode != 0:
                raise DistilleryError(f"`dvc repro --force --single-item {stage}` failed (output above)")


if __name__ == "__main__":
    main()
