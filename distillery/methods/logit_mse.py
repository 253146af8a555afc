"""``logit_mse``: logit matching, Ba & Caruana (NeurIPS 2014), "Do Deep Nets Really Need to be Deep?"; the
distillation loss of Tang et al. (2019), "Distilling Task-Specific Knowledge from BERT into Simple Neural Networks";
compared with KL by Kim et al. (IJCAI 2021), "Comparing Kullback-Leibler Divergence and Mean Squared Error Loss in
Knowledge Distillation"."""
from __future__ import annotations

from typing import TYPE_CHECKING

from .losses import LossTerms, labelled_ce
from .base import Method

if TYPE_CHECKING:  # annotations only: torch is imported where a function runs it
    import torch


def logit_mse(student_logits: torch.Tensor, teacher_logits: torch.Tensor) -> torch.Tensor:
    """``mean over rows and classes of (s − t)²`` (``F.mse_loss``): the squared distance of the raw logits, no
    softmax and no temperature. The papers write the sum over the C classes, ``‖s − t‖²`` (Ba & Caruana with a ½),
    C times this per row; the mean keeps the term's size apart from C (a language model's vocabulary). Hinton et al.
    (2015, §2.1): ``T²·KL(softmax(t/T) ‖ softmax(s/T))`` tends to ``½·mean_c (s_c − t_c)²`` per row as T grows, for
    rows of mean 0; this term is twice that limit, and unlike the KL it also counts a constant added to a row."""
    import torch.nn.functional as F

    return F.mse_loss(student_logits, teacher_logits.to(student_logits.dtype))


def logit_mse_terms(student_logits, teacher_logits, labels, alpha: float) -> LossTerms:
    """``(1-α)·CE(y, s) + α·MSE(s, t)``: cross-entropy on the labelled rows, the logit distance on every row
    (transfer rows included). ``terms``: the unweighted ``ce`` and ``mse``."""
    ce = labelled_ce(student_logits, labels)
    mse = logit_mse(student_logits, teacher_logits)
    return LossTerms((1.0 - alpha) * ce + alpha * mse, {"ce": ce, "mse": mse})


def _check_params(params):
    if params["teacher"]["logits_top_k"] is not None:
        return ("it matches every one of the teacher's logits, which teacher.logits_top_k does not keep (only the "
                "rest's mean and log-sum-exp): set teacher.logits_top_k to null")
    return None


METHOD = Method(
    name="logit_mse",
    paper="Ba & Caruana 2014, Do Deep Nets Really Need to be Deep? (NeurIPS); Tang et al. 2019, Distilling "
          "Task-Specific Knowledge from BERT into Simple Neural Networks",
    loss=lambda inputs, hp: logit_mse_terms(inputs.student.logits, inputs.teacher_logits, inputs.labels,
                                            hp["alpha"]),
    shared=("alpha",),
    terms=("ce", "mse"),
    check_params=_check_params,
    description="the mean squared distance of student and teacher logits (stored teacher logits), no temperature",
)
