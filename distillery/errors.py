"""The one exception type for bad input, and what every command and stage does with it: print it and exit with
status 2, without a traceback."""
import sys
from contextlib import contextmanager


class DistilleryError(Exception):
    """Bad params, data or logits: the message names the param/file/column and the offending values."""


@contextmanager
def exit_on_error():
    """A ``DistilleryError`` raised inside prints ``error: <message>`` on stderr and exits with status 2; any other
    exception goes on as it is."""
    try:
        yield
    except DistilleryError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)
