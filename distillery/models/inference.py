"""Running a trained model: logits for every row of an input array, in row order."""
from __future__ import annotations

import numpy as np
import torch
from tqdm.auto import tqdm


def best_device() -> torch.device:
    """CUDA if present, else Apple MPS, else CPU."""
    if torch.cuda.is_available():
        return torch.device("cuda")
    if torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def predict_logits(model, inputs: np.ndarray, batch_size: int = 512, desc: str = "inference",
                   device: torch.device | None = None) -> np.ndarray:
    """Raw (pre-softmax) float32 logits, shape (N, num_labels), in eval mode under ``inference_mode``, on
    ``device`` (default: ``best_device()``). The inputs go to the device once and the logits come back once;
    batches are slices there."""
    device = device or best_device()
    model = model.to(device).eval()
    if not len(inputs):
        return np.zeros((0, model.config.num_labels), np.float32)
    features = torch.from_numpy(np.ascontiguousarray(inputs)).to(device)
    out = []
    with torch.inference_mode():
        for start in tqdm(range(0, len(inputs), batch_size), desc=desc, leave=False, disable=len(inputs) <= batch_size):
            out.append(model(features=features[start : start + batch_size]).logits.float())
    return torch.cat(out).cpu().numpy()


def autocast(device: torch.device):
    """bf16 (or fp16) autocast on CUDA; nothing elsewhere (CPU autocast is slower and changes results)."""
    import contextlib

    if device.type != "cuda":
        return contextlib.nullcontext()
    dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return torch.autocast("cuda", dtype=dtype)


def predict_text_logits(model, tokenizer, tokenized, batch_size: int = 128, desc: str = "inference",
                        sort_by_length: bool = True, device: torch.device | None = None) -> np.ndarray:
    """Raw float32 logits of a tokenized split (see ``distillery.models.tokenization.tokenize``), in its row order.

    Rows run in batches of similar length (sorted by token count), each padded only to its longest
    row, under ``inference_mode`` (and autocast on CUDA); the logits are put back in row order.
    ``sort_by_length=False`` runs the rows in order (the reference the fast path is tested against).
    """
    device = device or best_device()
    model = model.to(device).eval()
    inputs = [c for c in tokenizer.model_input_names if c in tokenized.column_names]
    columns = {c: list(tokenized[c]) for c in inputs}
    lengths = np.array([len(ids) for ids in columns[inputs[0]]])
    order = np.argsort(lengths, kind="stable") if sort_by_length else np.arange(len(lengths))
    out = np.zeros((len(lengths), model.config.num_labels), np.float32)
    starts = range(0, len(order), batch_size)
    with torch.inference_mode(), autocast(device):
        for start in tqdm(starts, desc=desc, leave=False, disable=len(order) <= batch_size):
            rows = order[start : start + batch_size]
            batch = tokenizer.pad([{c: columns[c][i] for c in inputs} for i in rows], return_tensors="pt")
            out[rows] = model(**{k: v.to(device) for k, v in batch.items()}).logits.float().cpu().numpy()
    return out


def split_logits(model, tokenizer, split, batch_size: int, desc: str, name: str = "split",
                 device: torch.device | None = None, rows: np.ndarray | None = None) -> np.ndarray:
    """Logits for a prepared split (or its row positions ``rows``), whatever the model: arrays for array models,
    the model's own tokenization of the text for text models (``tokenizer`` given)."""
    if tokenizer is None:
        return predict_logits(model, split.inputs if rows is None else split.inputs[rows], batch_size, desc, device)
    from .tokenization import tokenize

    tokenized = tokenize(split.dataset, tokenizer, name)
    return predict_text_logits(model, tokenizer, tokenized if rows is None else tokenized.select(rows), batch_size,
                               desc, device=device)


def split_logits_across_processes(model, tokenizer, split, batch_size: int, desc: str,
                                  name: str = "split") -> np.ndarray | None:
    """``split_logits`` with the rows split across the stage's processes (``compute.processes``), each on its
    own device, and joined by id on the main process (None on the others); one process: ``split_logits``."""
    from .. import distributed

    if distributed.processes() == 1:
        return split_logits(model, tokenizer, split, batch_size, desc, name)
    rows = distributed.my_rows(len(split.ids))
    logits = split_logits(model, tokenizer, split, batch_size, desc, name, distributed.state().device, rows)
    return distributed.gather_by_id(split.ids[rows], logits, split.ids, f"{name} logits")
