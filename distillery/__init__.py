"""distillery: a reproducible knowledge-distillation pipeline (DVC stages over the Hugging Face Trainer).

The subpackages follow the data through the pipeline, each importing only those before it (pyproject.toml's
import-linter contracts; docs/layout.md):

    data -> models -> methods -> training -> evaluation -> params -> cli, launch -> predict, export -> experiments

on shared ground that every layer may import: ``errors`` (the one exception type), ``io`` (atomic writes, JSON,
the logits files, fingerprints), ``logits_top_k`` (top-k storage of logits), ``token_logits`` (a language model's
per-token logits), ``schema`` (params fields and block validation), ``distributed`` (several processes),
``numerics`` (the pinned CPU kernels) and ``forking`` (jobs side by side in forked processes). The stage scripts
in ``stages/`` call into these; ``predict`` and ``export`` are the commands that take a trained model away.
"""
