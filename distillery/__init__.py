"""distillery: a reproducible knowledge-distillation pipeline (DVC stages over the Hugging Face Trainer).

The subpackages follow the data through the pipeline, each importing only those before it (pyproject.toml's
import-linter contracts; docs/layout.md):

    data -> models -> methods -> training -> evaluation -> params -> cli, launch -> experiments

on shared ground that every layer may import: ``errors`` (the one exception type), ``io`` (atomic writes, JSON,
the logits files, fingerprints), ``logits_top_k`` (top-k storage of logits), ``token_logits`` (a language model's
per-token logits), ``schema`` (params fields and block validation) and ``distributed`` (several processes). The
stage scripts in ``stages/`` call into these.
"""
