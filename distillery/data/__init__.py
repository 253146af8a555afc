"""Data: from ``data.source`` to the prepared splits every later stage reads, and the transfer sets.

``prepare`` (arrays: sklearn digits, npz) with ``files`` (reading files and datasets, ids, labels, the split),
``text`` and ``tables`` (the text and numeric-table sources, independent of each other), ``validation``,
``splitting``, ``scaling``; ``prepared`` (the splits on disk); ``transfer`` and ``augment`` (rows learnt from the
teacher's soft targets only); ``omitted`` (Hinton's omitted-class experiment); ``device`` (a batch's small tensors
onto a GPU without a host sync); ``params`` (the ``data`` block); ``sources`` (the files params.yaml names and what
they held when a stage read them).

May import: the shared ground only (``distillery.errors``, ``io``, ``schema``, ``distributed``, ``logits_top_k``).
"""
