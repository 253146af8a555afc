"""What every stage script shares: run ``main``, turn bad input into a one-line error and exit 2."""
from __future__ import annotations

import gc
import logging
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Callable

from .numerics import RECORD_FILE, pin, record as record_numerics


def set_cpu_threads() -> None:
    """Pin torch's CPU threads to the ``cpu_threads`` param (0: torch's default, one per core).

    A fixed count keeps results bit-identical across machines (the thread count changes the order
    of float sums), and one thread keeps small models fast on a busy machine (bench/threads_under_load.py).
    """
    import torch

    from .params import load_params

    threads = load_params()["cpu_threads"]
    if threads:
        torch.set_num_threads(threads)


def quiet_torchao() -> None:
    """transformers imports torchao whenever it is installed (for ``student.quantize``); its import logs a
    warning for each CUDA-only kernel library that a CPU-only torch cannot load, and torch a deprecation note
    per enum torchao registers. Neither concerns the CPU int8 path: keep them out of every stage's output."""
    for name in ("torchao", "torch.utils._pytree"):
        logging.getLogger(name).setLevel(logging.ERROR)


quiet_torchao()  # on import: every stage script imports this module before distillery's torch modules


def run_stage(main: Callable[[], None], uses_torch: bool = True, record: Path | None = None,
              reads: str | None = None) -> None:
    """Pin the numerics (``reproducible_cpu``, ``cpu_threads``), hide transformers' "Loading weights" bars, call
    ``main``, then write what was in force to ``record/numerics.json`` (the stage's output folder), and beside it
    the local checkpoints the model block ``reads`` names (``teacher``, ``teachers.<name>``, ``student``) in
    ``sources.json`` where there are any (see ``data.sources``). A ``DistilleryError`` prints ``error: <message>``
    and exits with status 2; Ctrl-C prints one line, not a traceback, and exits with status 130. The stage's
    objects are then frozen: the interpreter's last garbage collections at exit would scan every object of the
    imported libraries (0.85 s with torch and transformers on two CPU cores:
    ``python bench/pipeline_time.py --imports-only``)."""
    from .errors import exit_on_error

    logging.basicConfig(level=logging.INFO, format="%(message)s")
    with exit_on_error(), interrupted_quietly():
        from .params import load_params

        params = load_params()
        level = params["reproducible_cpu"]
        if uses_torch:  # the others (numpy only) run as the launcher started them: OpenBLAS reads its pin on loading
            import torch

            pin(level)
            torch.set_flush_denormal(True)  # denormals slow small CPU runs by about half
            set_cpu_threads()
            from .models.zoo import hide_loading_bars

            hide_loading_bars()
        main()
        if record is not None:
            write_record(record, params, reads)
        gc.freeze()


STAGE_INTERRUPTED = "`dvc repro` runs this stage again (a training stage resumes from its last checkpoint)"


@contextmanager
def interrupted_quietly(then: str | None = STAGE_INTERRUPTED):
    """Ctrl-C: one line on stderr, ``interrupted: <then>`` (None: nothing, for a command's helper process), and
    exit status 130 (128 + SIGINT), as a shell reports it."""
    try:
        yield
    except KeyboardInterrupt:
        if then is not None:
            print(f"interrupted: {then}", file=sys.stderr)
        sys.exit(130)


def write_record(folder: Path, params: dict, reads: str | None = None) -> None:
    """``folder/numerics.json``: the numerics the stage ran under (``distillery.numerics.record``), and
    ``folder/sources.json``: the local checkpoints of the model block ``reads`` (``data.sources``); written by the
    main process."""
    from .data.sources import CHECKPOINT_RECORD, checkpoint_record
    from .distributed import is_main
    from .io import write_json

    if not is_main():
        return
    write_json(folder / RECORD_FILE, record_numerics(params["reproducible_cpu"]))
    if reads is not None:
        block = params["teachers"][reads.split(".", 1)[1]] if reads.startswith("teachers.") else params[reads]
        checkpoints = checkpoint_record(block, reads)
        if checkpoints:
            write_json(folder / CHECKPOINT_RECORD, checkpoints)
