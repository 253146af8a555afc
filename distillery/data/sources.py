"""The local files params.yaml names, and what they held when a stage read them.

DVC re-runs a stage when a dependency in dvc.yaml changes, and dvc.yaml's dependencies are fixed paths: a file
that params.yaml names (``data.source: file:wine.csv``) or a local checkpoint (``teacher.model.pretrained:
../my-teacher``) cannot be one of them. The ``sources`` stage, which DVC runs first on every ``dvc repro`` and
``dvc exp run`` (``always_changed``), writes the sha256 of each such file (a folder's: of its files' names and
contents) into ``data/sources/<stage>.json`` (``watch``), one file per stage that reads them; each of those stages
depends on its file, so an edited file or a checkpoint replaced at the same path re-runs the stage that reads it and
nothing else. The stages also record what they read themselves: ``prepare`` and ``transfer`` in their ``meta.json``
(``source_record``), the teachers and students beside their ``numerics.json`` (``checkpoint_record``); ``make
export`` refuses while a file changed since (``stale_stages``) and names them in the model card. Runs kept for reuse
are keyed by the same digests (``checkpoint_digests``), so a checkpoint replaced at the same path trains anew.
"""
from __future__ import annotations

import functools
import hashlib
import json
import os
import subprocess
from pathlib import Path

from ..errors import DistilleryError
from ..io import write_json
from .params import source_path

RECORD_KEY = "source_files"
PREPARE_READS = ("data.source", "data.files", "data.tokenizer")  # the param names of the files prepare reads
CHECKPOINT_RECORD = "sources.json"  # beside a training stage's numerics.json
# the stages that read files named in params, and the JSON file where each records them
STAGE_RECORDS = {"prepare": Path("data/prepared/meta.json"), "transfer": Path("data/transfer/meta.json"),
                 "teacher": Path("reports/training/teacher") / CHECKPOINT_RECORD,
                 "distill": Path("reports/training/kd") / CHECKPOINT_RECORD,
                 "hard_baseline": Path("reports/training/hard") / CHECKPOINT_RECORD}
EXTRA_TEACHER_RECORDS = "reports/training/teachers/*/" + CHECKPOINT_RECORD  # stage extra_teacher@<name>
WATCH_FOLDER = Path("data/sources")  # the sources stage's output: <name>.json per stage (or stages) reading files
WATCH_READERS = {"prepare": "prepare", "transfer": "transfer", "teacher": "teacher",
                 "student": "distill and hard_baseline"}  # and teachers/<name>: extra_teacher@<name>


def local_files(data: dict) -> dict[str, str]:
    """The local files a ``data`` block may read: param name -> path as written (the path of ``data.source`` and
    ``data.transfer.source``, whatever their kind: ``source_path``; each of ``data.files``; ``data.tokenizer``).
    A path that does not exist (a Hub id) is skipped by those who read them."""
    paths = {}
    sources = {"data.source": data.get("source"), "data.transfer.source": (data.get("transfer") or {}).get("source")}
    for key, spec in sources.items():
        if path := source_path(str(spec or "")):
            paths[key] = path
    paths.update({f"data.files.{split}": path for split, path in (data.get("files") or {}).items()})
    if data.get("tokenizer"):
        paths["data.tokenizer"] = data["tokenizer"]
    return paths


def named_checkpoints(block: dict, prefix: str) -> dict[str, str]:
    """Param -> value of a teacher or student block's (``prefix``: its param name) ``model.pretrained``,
    ``model.tokenizer`` and ``checkpoint`` where set: a path here or a Hub id."""
    model = block.get("model") or {}
    named = {"model.pretrained": model.get("pretrained"), "model.tokenizer": model.get("tokenizer"),
             "checkpoint": block.get("checkpoint")}
    return {f"{prefix}.{key}": path for key, path in named.items() if isinstance(path, str) and path}


def transfer_reads(data: dict) -> tuple[str, ...]:
    """The param names of the files the transfer stage reads: its source, and prepare's with ``data.transfer.rest``
    (the source's rows outside the splits)."""
    return ("data.transfer.source", *(PREPARE_READS if data["transfer"]["rest"] else ()))


def local_checkpoints(block: dict, prefix: str, root: Path = Path(".")) -> dict[str, str]:
    """The checkpoints a teacher or student block reads from this machine: param -> path, for each of
    ``named_checkpoints`` that is a path here (a Hub id is not)."""
    return {key: path for key, path in named_checkpoints(block, prefix).items() if (Path(root) / path).exists()}


def checkpoint_digests(params: dict, root: Path = Path(".")) -> dict[str, str]:
    """Path -> sha256 of every local checkpoint params names (teacher, ``teachers.<name>``, student,
    ``data.tokenizer``): what a kept run's key takes of them."""
    paths = {**local_checkpoints(params.get("teacher") or {}, "teacher", root),
             **local_checkpoints(params.get("student") or {}, "student", root)}
    for name, block in (params.get("teachers") or {}).items():
        paths.update(local_checkpoints(block, f"teachers.{name}", root))
    tokenizer = local_files(params.get("data") or {}).get("data.tokenizer")
    if tokenizer and (Path(root) / tokenizer).exists():
        paths["data.tokenizer"] = tokenizer
    return {path: digest(Path(root) / path)["sha256"] for path in sorted(set(paths.values()))}


def sha256(path: Path) -> str:
    """The file's SHA-256. A file of 1 MiB or more is read once per process while its inode, size and modification
    time stay the same: a stage would otherwise hash a checkpoint's weights three or four times (a smaller file is
    read each time, as rewriting one can keep its size and time stamp)."""
    stat = Path(path).stat()
    if stat.st_size < 1 << 20:
        return _read_sha256(path)
    return _sha256(str(Path(path).resolve()), stat.st_ino, stat.st_size, stat.st_mtime_ns)


@functools.lru_cache(maxsize=1024)
def _sha256(path: str, inode: int, size: int, mtime_ns: int) -> str:
    """``_read_sha256`` kept per file state (the arguments after the path are the cache's key)."""
    return _read_sha256(path)


def _read_sha256(path) -> str:
    """The file's SHA-256, read in blocks of 1 MiB."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def digest(path: Path) -> dict:
    """``{"sha256", "bytes"}`` of a file, or of a folder: the SHA-256 of its files' relative paths and contents in
    sorted order, and their bytes together."""
    path = Path(path)
    if path.is_file():
        return {"sha256": sha256(path), "bytes": path.stat().st_size}
    combined, size = hashlib.sha256(), 0
    for file in sorted(p for p in path.rglob("*") if p.is_file()):
        combined.update(f"{file.relative_to(path).as_posix()}\0{sha256(file)}\n".encode())
        size += file.stat().st_size
    return {"sha256": combined.hexdigest(), "bytes": size}


def source_record(data: dict, keys: tuple[str, ...], root: Path = Path(".")) -> dict:
    """``{"source_files": {path as written: {"sha256": ..., "bytes": ...}}}`` for the local files (or folders) of
    ``data`` whose param name starts with one of ``keys``; ``{}`` when there are none (a stage's record is then as
    before)."""
    files = {path: digest(Path(root) / path) for key, path in local_files(data).items()
             if key.startswith(keys) and (Path(root) / path).exists()}
    return {RECORD_KEY: files} if files else {}


def checkpoint_record(block: dict, prefix: str, root: Path = Path(".")) -> dict:
    """``source_record`` of the local checkpoints of a teacher or student block (``local_checkpoints``)."""
    files = {path: digest(Path(root) / path) for path in local_checkpoints(block, prefix, root).values()}
    return {RECORD_KEY: files} if files else {}


def changed_files(meta_file: Path, root: Path = Path(".")) -> list[str]:
    """The files a stage's ``meta.json`` recorded that hold something else now, each said in a few words; [] when
    the stage has not run or recorded none."""
    if not Path(meta_file).is_file():
        return []
    changed = []
    for path, was in json.loads(Path(meta_file).read_text()).get(RECORD_KEY, {}).items():
        where = Path(root) / path
        if not where.exists():
            changed.append(f"{path} is gone")
        elif (now := digest(where)["sha256"]) != was["sha256"]:
            changed.append(f"{path} changed (sha256 {was['sha256'][:12]}… then, {now[:12]}… now)")
    return changed


def stage_records(root: Path = Path(".")) -> dict[str, Path]:
    """Stage -> the file where it records what it read (``STAGE_RECORDS`` and one per extra teacher)."""
    extra = {f"extra_teacher@{record.parent.name}": record.relative_to(root)
             for record in sorted(Path(root).glob(EXTRA_TEACHER_RECORDS))}
    return {**STAGE_RECORDS, **extra}


def stale_stages(root: Path = Path(".")) -> dict[str, list[str]]:
    """Stage -> the files it read that changed since (only the stages with any)."""
    stale = {stage: changed_files(Path(root) / record, root) for stage, record in stage_records(root).items()}
    return {stage: changes for stage, changes in stale.items() if changes}


def in_repo_copy(path: Path, root: Path = Path(".")) -> bool:
    """Whether a copy of the repo at ``root`` (a clone, or DVC's queued experiment) holds ``path``, a path inside
    it: git tracks it, or DVC does (a ``.dvc`` file beside it or beside a folder above it)."""
    relative = Path(path).resolve().relative_to(Path(root).resolve())
    listed = subprocess.run(["git", "ls-files", "--error-unmatch", "--", str(relative)], cwd=root,
                            capture_output=True)
    return listed.returncode == 0 or any((Path(root) / part.parent / f"{part.name}.dvc").exists()
                                         for part in [relative, *relative.parents[:-1]])


def watched(params: dict) -> dict[str, dict[str, str]]:
    """Name of a ``data/sources`` file -> the files (param -> path as written; those of a checkpoint may be Hub ids)
    that the stages depending on it read: ``prepare``, ``transfer``, ``teacher``, ``student`` (``distill`` and
    ``hard_baseline``) and ``teachers/<name>`` (``extra_teacher@<name>``). ``params``: validated."""
    data = params["data"]
    files = local_files(data)
    watch = {"prepare": {key: path for key, path in files.items() if key.startswith(PREPARE_READS)},
             "transfer": {key: path for key, path in files.items() if key.startswith(transfer_reads(data))},
             "teacher": named_checkpoints(params["teacher"], "teacher"),
             "student": named_checkpoints(params["student"], "student")}
    for name, block in params["teachers"].items():
        watch[f"teachers/{name}"] = named_checkpoints(block, f"teachers.{name}")
    return watch


def watch(params: dict, root: Path = Path("."), folder: Path = WATCH_FOLDER,
          workspace: Path | None = None) -> list[str]:
    """Write ``folder/<name>.json`` for each of ``watched(params)``: path -> sha256 of each of its files that exists
    here. Files of ``teachers.<name>`` no longer in params are removed. Returns a line per file that changed since,
    and a warning per file gone from the workspace.

    A path that does not exist here keeps the digest it had, so its stage keeps its outputs: a clone that pulled
    them may lack a file outside the repo (``../shared``), and a queued experiment runs in a copy of the repo
    (``.dvc/tmp/exps``) that lacks the untracked files and those outside it. ``workspace`` (default: ``DVC_ROOT``,
    which DVC sets to the workspace in its copies) is where such a file is looked for then: one that changed there
    since the workspace's last ``dvc repro`` is refused, as the experiment would give results of the file as it was."""
    workspace = Path(workspace or os.environ.get("DVC_ROOT") or root)
    in_copy = workspace.resolve() != Path(root).resolve()
    digests, said, written, stale = {}, [], {}, []
    for name, paths in watched(params).items():
        file = Path(root) / folder / f"{name}.json"
        before = json.loads(file.read_text()) if file.is_file() else {}
        readers = WATCH_READERS.get(name) or f"extra_teacher@{name.split('/', 1)[1]}"
        now = {}
        for key, path in sorted(paths.items(), key=lambda item: item[1]):
            if (Path(root) / path).exists():
                if path not in digests:  # a folder read by several stages (teacher and student) is hashed once
                    digests[path] = digest(Path(root) / path)["sha256"]
                now[path] = digests[path]
            elif path in before:
                now[path] = before[path]
                there = Path(workspace) / path
                if in_copy and there.exists() and (sha := digest(there)["sha256"]) != before[path]:
                    stale.append(f"{path} ({key}; sha256 {before[path][:12]}… then, {sha[:12]}… now)")
                elif not in_copy or not there.exists():
                    said.append(f"warning: {path} ({key}) is gone: {readers} keeps its outputs of the file as it "
                                f"was (sha256 {before[path][:12]}…) and would fail if it ran; put the file back, or "
                                f"point {key} at where it is now")
        said += [f"{path} changed (sha256 {before[path][:12]}… then, {sha[:12]}… now): {readers} runs again"
                 for path, sha in now.items() if path in before and before[path] != sha]
        written[file] = now if now != before or not file.is_file() else None
    if stale:
        raise DistilleryError(
            f"this experiment runs in a copy of the repo that lacks files the workspace holds, and they changed "
            f"since the workspace's last `dvc repro`: {'; '.join(stale)}. Its stages would give results of the "
            f"files as they were: run `dvc repro` in the workspace first (`make sweep` and `make tune` do), or "
            f"`git add` the files (a queued experiment carries what git tracks or has staged)")
    for file, now in written.items():
        if now is not None:
            write_json(file, now)
    for file in (Path(root) / folder).glob("teachers/*.json"):
        if file not in written:
            file.unlink()
    return said
