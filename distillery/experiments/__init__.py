"""Experiments: many pipeline runs and their comparison, driving DVC from outside the stages.

``sweep`` and ``sweep_report`` (``make sweep``: a grid of queued experiments and its report), ``study`` (an
Optuna study's best trial), ``tune`` (``make tune``), ``presets`` (``make preset``), ``pr_report`` (``make diff``
and the pull-request comment), ``remote`` (``make pull`` / ``make push``).

May import: every other part of the package.
"""
