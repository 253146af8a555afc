"""What every stage script shares: run ``main``, turn bad input into a one-line error and exit 2."""
from __future__ import annotations

import logging
import sys
from typing import Callable


def run_stage(main: Callable[[], None], uses_torch: bool = True) -> None:
    """Call ``main``; a ``DistilleryError`` prints ``error: <message>`` and exits with status 2."""
    from .errors import DistilleryError

    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if uses_torch:
        import torch

        torch.set_flush_denormal(True)  # denormals slow small CPU runs by about half
    try:
        main()
    except DistilleryError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)
