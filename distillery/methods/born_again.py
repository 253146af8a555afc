"""``born_again``: Furlanello, Lipton, Tschannen, Itti & Anandkumar (ICML 2018), "Born-Again Neural Networks".

Generations of the teacher's own architecture, each distilled from the one before: generation 1 from the
teacher's stored logits, generation k from generation k−1's logits (computed once per generation on train and
validation; ``students.train_students``, need ``generations``). Every generation trains ``train.max_steps``
steps, so the saved student (the last generation) used ``kd.born_again.generations`` × the hard student's budget.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from .losses import LossTerms
from ..schema import INT, Field
from .base import Method
from .kd import kd_terms

if TYPE_CHECKING:  # annotations only: torch is imported where a function runs it
    import torch

TEXT_OPTIONS = ("pretrained", "config", "tokenizer", "max_length")  # arch hf


def born_again_terms(
    student_logits: torch.Tensor,
    previous_logits: torch.Tensor,
    labels: torch.Tensor,
    T: float,
    alpha: float,
) -> LossTerms:
    """Generation k's loss: Hinton's KD on the logits ``t = s_{k-1}`` of the generation before it (the teacher's for
    k = 1): ``(1-α)·CE(y, s_k) + α·T²·KL(softmax(t/T) ‖ softmax(s_k/T))``.

    The paper's BAN uses the distillation term only (α = 1, T = 1); here α and T keep the meaning they have for
    ``kd`` (``kd.alpha``, ``kd.T``). ``terms``: the unweighted ``ce`` and the T²-scaled ``kd`` term.
    """
    return kd_terms(student_logits, previous_logits, labels, T, alpha)


def _check_params(params):
    student, teacher = params["student"]["model"], params["teacher"]["model"]
    if params["teacher"]["checkpoint"]:
        return ("the students are generations of the teacher's architecture, which teacher.checkpoint hides from "
                "params: describe the teacher with teacher.model (and student.model equal to it)")
    if student["init_from_teacher_layers"]:
        return ("each generation starts from its own initialisation: leave student.model.init_from_teacher_layers "
                "unset")
    from ..models.params import ARCH_FIELDS

    # what builds the teacher's architecture
    keys = ("arch", *(TEXT_OPTIONS if teacher["arch"] == "hf" else ARCH_FIELDS[teacher["arch"]]))
    differ = [f"student.model.{k} {student[k]!r} vs teacher.model.{k} {teacher[k]!r}"
              for k in keys if student[k] != teacher[k]]
    if differ:
        return ("the students are generations of the teacher's architecture: set student.model to teacher.model ("
                + "; ".join(differ) + ")")
    return None


def _at_least_one(v):
    return None if v >= 1 else "must be >= 1"


METHOD = Method(
    name="born_again",
    paper="Furlanello, Lipton, Tschannen, Itti & Anandkumar 2018, Born-Again Neural Networks (ICML)",
    loss=lambda inputs, hp: born_again_terms(inputs.student.logits, inputs.teacher_logits, inputs.labels,
                                             hp["T"], hp["alpha"]),
    needs=frozenset({"teacher_logits", "generations"}),
    params={"generations": Field(INT, _at_least_one, 2,
                                 help="students trained one after the other, each distilled from the one before "
                                      "(the first from the teacher); the last is saved as the student")},
    terms=("ce", "kd"),
    check_params=_check_params,
    description="generations of the teacher's architecture, each distilled (KD) from the generation before",
)
