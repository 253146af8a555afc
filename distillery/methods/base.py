"""What a distillation method is: a name, a pure loss, its own params and what it needs.

A method module in ``distillery/methods/`` defines ``METHOD = Method(...)``; the registry
(``distillery.methods``) finds it, the params schema takes its params (``kd.<name>.*``), the
students and the Trainer give its loss what ``needs`` declares, and the report, plots and sweep
report read its name, params and ``terms``. Nothing else names a method.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Mapping

from ..errors import DistilleryError
from .losses import LossTerms, hard_terms

if TYPE_CHECKING:  # annotations only: torch is imported where a function runs it
    import torch
    from torch import nn

NEEDS = {
    "teacher_logits": "the teacher's stored logits, joined by id (computed once by the teacher_logits stage)",
    "teachers": "the stored logits of the teacher and of every `teachers.<name>`, combined into one target "
                "before training (``combine``)",
    "live_teacher": "the teacher run on every batch under torch.no_grad() (for targets too large to store)",
    "hidden_states": "intermediate outputs of the student (and of the live teacher): hidden states, feature maps",
    "attentions": "attention maps of the student (and of the live teacher): transformer models only",
    "helpers": "trainable modules (projections, regressors) optimised with the student, not saved with it",
    "peers": "other students trained at the same time, each learning from the others",
    "generated": "language models: the teacher's sampled continuations of training prompts (teacher.generate), "
                 "scored once by the transfer_logits stage, added to the training sequences",
    "student_samples": "language models: on a fraction of the steps (``student_data_fraction``, from ``start_step`` "
                       "on) the batch's prompts (``prompt_tokens``) continued by the student (``max_new_tokens``; "
                       "null: up to data.max_length; ``temperature``, ``teacher_mix`` where the method has them), "
                       "labelled by their sampled tokens, ``StepInputs.sampled`` set",
    "generations": "students trained one after the other (``kd.<name>.generations`` of them), generation 1 on what "
                   "the other needs give (the teacher's stored logits), generation k on generation k-1's logits; "
                   "the last is saved as the student",
}
SHARED = ("T", "alpha")  # kd.T and kd.alpha: the params most methods read


@dataclass
class StepInputs:
    """Everything a loss may use on one batch (torchdistill's ``student_io_dict``/``teacher_io_dict``).

    ``student``/``teacher``/``peers`` are model outputs (``.logits`` and, when the method needs them,
    ``.hidden_states`` and ``.attentions``). ``teacher_logits`` are the stored logits, or the live
    teacher's. ``step`` and ``max_steps`` count optimiser steps (for warm-ups and schedules). ``inputs``
    are the batch's model inputs (text: ``input_ids``, ``attention_mask``, ...), e.g. for a padding mask.
    ``sampled``: the batch is the student's own continuations (``student_samples``), its labels the sampled tokens.
    ``token_index``: a language model's (sequence, position) of each token row in the (B, L) batch, rows in the
    batch's order (for losses over whole sequences); None for a classifier.
    """

    student: Any
    labels: torch.Tensor
    teacher_logits: torch.Tensor | None = None
    teacher: Any = None
    helpers: nn.Module | None = None
    peers: list | None = None
    step: int = 0
    max_steps: int = 1
    inputs: dict | None = None
    sampled: bool = False
    token_index: tuple[torch.Tensor, torch.Tensor] | None = None


@dataclass(frozen=True)
class Method:
    """A distillation method, declared once.

    - ``loss(inputs, hp) -> LossTerms``: adapts ``StepInputs`` to the method's pure loss function
      (which stays callable on plain tensors); ``hp`` holds the shared params it reads (``shared``)
      and its own (``params``, given as ``kd.<name>.<param>``).
    - ``needs``: keys of ``NEEDS``.
    - ``terms``: the named parts its loss logs (plotted as training curves).
    - ``check_params(params)``: an error text when the method cannot run with these params (checked
      with the rest of params.yaml, at the start of every stage), else None.
    - ``check(student, teacher, hp)``: an error text when the method cannot run with these models
      (called by the distill stage before any training), else None.
    - ``make_helpers(student, teacher, hp)``: the trainable helper modules (``needs`` has ``helpers``).
    - ``combine(logits, accuracies, hp)``: several teachers' stored logits (N, K, C) and their validation
      accuracies (K,) -> the target logits (N, C) the loss reads as ``teacher_logits`` (``needs`` has ``teachers``).
    """

    name: str
    paper: str
    loss: Callable[[StepInputs, dict], LossTerms]
    needs: frozenset = frozenset({"teacher_logits"})
    params: Mapping = field(default_factory=dict)
    shared: tuple = SHARED
    terms: tuple = ("ce", "kd")
    check_params: Callable | None = None
    check: Callable | None = None
    make_helpers: Callable | None = None
    combine: Callable | None = None
    description: str = ""

    def __post_init__(self):
        unknown = set(self.needs) - set(NEEDS)
        if unknown:
            raise ValueError(f"method {self.name!r}: unknown needs {sorted(unknown)}; known: {sorted(NEEDS)}")
        if ("helpers" in self.needs) != (self.make_helpers is not None):
            raise ValueError(f"method {self.name!r}: needs 'helpers' goes with make_helpers, and only with it")
        if ("teachers" in self.needs) != (self.combine is not None):
            raise ValueError(f"method {self.name!r}: needs 'teachers' goes with combine, and only with it")

    @property
    def teacher_needed(self) -> bool:
        return bool({"teacher_logits", "teachers", "live_teacher"} & self.needs)

    @property
    def read_params(self) -> list[str]:
        """The ``kd`` params this method reads, as params.yaml paths: ``kd.T``, ``kd.<name>.beta``, ..."""
        return [f"kd.{p}" for p in self.shared] + [f"kd.{self.name}.{p}" for p in self.params]

    def reads(self, key: str) -> bool:
        """Whether a run of this method depends on the param ``key`` (a dotted params.yaml path): of the ``kd``
        block ``kd.method``, the shared params it declares and its own ``kd.<name>.*``; every param outside it."""
        block, _, rest = key.partition(".")
        if block != "kd" or rest == "method":
            return True
        owner, _, own = rest.partition(".")
        return owner == self.name if own else owner in self.shared

    def hyperparams(self, kd_params: dict) -> dict:
        """The params this method reads, from the ``kd`` block (validated in the pipeline; in your own code a dict
        of the shared ones it reads, e.g. ``{"T": 4.0, "alpha": 0.5}``, and any of its own under its name): its own
        params not given take their declared defaults; a shared one missing is named."""
        missing = [k for k in self.shared if k not in kd_params]
        if missing:
            raise DistilleryError(f"kd.method = {self.name!r} reads {', '.join('kd.' + k for k in self.shared)}; "
                                  f"not given: {', '.join('kd.' + k for k in missing)}")
        return {**{k: kd_params[k] for k in self.shared},
                **{k: declared.default for k, declared in self.params.items()}, **kd_params.get(self.name, {})}


class Hyperparams(dict):
    """The params handed to a method's loss: a dict whose lookup of a param the method does not declare raises a
    ``DistilleryError`` naming the method, the param and those it declares (a bare ``KeyError`` named none of them,
    raised at the first step in each seed's process)."""

    def __init__(self, method: Method, values: Mapping):
        super().__init__(values)
        self.method_name = method.name
        self.declared = (*method.shared, *method.params)

    def __missing__(self, key):
        raise DistilleryError(
            f"kd.method = {self.method_name!r}: its loss reads the param {key!r}, which the method does not declare; "
            f"it declares {', '.join(self.declared) or 'none'} (METHOD's shared and params in "
            f"distillery/methods/{self.method_name}.py)")


HARD = Method(
    name="hard",
    paper="cross-entropy on the labels (the hard-label baseline and the teacher's own training)",
    loss=lambda inputs, hp: hard_terms(inputs.student.logits, None, inputs.labels),
    needs=frozenset(),
    shared=(),
    terms=("ce",),
)
