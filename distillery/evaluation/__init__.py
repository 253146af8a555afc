"""Evaluation: everything the evaluate and plots stages write.

``evaluate`` (teacher and students on validation and test, the KD - hard comparison), ``metrics`` (accuracy,
NLL, ECE, temperature scaling, the paired bootstrap), ``speed`` (latency and throughput), ``quantization``
(int8 students), ``report`` (reports/report.md), ``plots`` (the PNG figures), ``params`` (``evaluate``,
``student.quantize``).

May import: ``distillery.training``, ``methods``, ``models``, ``data`` and the shared ground.
"""
