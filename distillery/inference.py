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


def predict_logits(model, inputs: np.ndarray, batch_size: int = 512, desc: str = "inference") -> np.ndarray:
    """Raw (pre-softmax) float32 logits, shape (N, num_labels), in eval mode under ``inference_mode``."""
    device = best_device()
    model = model.to(device).eval()
    out = []
    with torch.inference_mode():
        for start in tqdm(range(0, len(inputs), batch_size), desc=desc, leave=False, disable=len(inputs) <= batch_size):
            batch = torch.from_numpy(np.ascontiguousarray(inputs[start : start + batch_size])).to(device)
            out.append(model(features=batch).logits.float().cpu().numpy())
    return np.concatenate(out) if out else np.zeros((0, model.config.num_labels), np.float32)
