"""``seqkd``: Kim & Rush (2016), "Sequence-Level Knowledge Distillation" (language models)."""
from __future__ import annotations

from .base import Method
from .kd import kd_terms

METHOD = Method(
    name="seqkd",
    paper="Kim & Rush 2016, Sequence-Level Knowledge Distillation",
    # the loss is kd's: what makes it sequence-level is the data, the teacher's own sequences beside the corpus
    loss=lambda inputs, hp: kd_terms(inputs.student.logits, inputs.teacher_logits, inputs.labels, hp["T"],
                                     hp["alpha"]),
    needs=frozenset({"teacher_logits", "generated"}),
    terms=("ce", "kd"),
    description="the student also trains on the teacher's sampled continuations of training prompts "
                "(teacher.generate), their tokens as labels: Seq-KD at kd.alpha = 0, Seq-KD + Word-KD (the "
                "teacher's stored per-token logits at T) above",
)
