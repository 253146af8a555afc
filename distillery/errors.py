"""The one exception type for bad input: stages print it and exit non-zero, without a traceback."""


class DistilleryError(Exception):
    """Bad params, data or logits: the message names the param/file/column and the offending values."""
