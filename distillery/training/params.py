"""The training blocks of params.yaml: ``cpu_threads``, ``compute``, ``teacher``, ``teachers``, ``train`` and the
student's model; their schema and the rules between their params.
"""
from __future__ import annotations

from ..errors import DistilleryError
from ..models.params import model_block, student_model_block
from ..schema import FLOAT, INT, LIST, STR, Field, non_negative, one_of, positive


def _seed_list(v):
    if not v:
        return "must be a non-empty list of integer seeds"
    if not all(isinstance(x, int) and not isinstance(x, bool) and x >= 0 for x in v):
        return "must be a list of non-negative integers"
    if len(set(v)) != len(v):
        return "must not repeat a seed"
    return None


def _teacher_names(v):
    import re

    bad = [name for name in v if not re.fullmatch(r"[A-Za-z0-9_-]+", str(name))]
    if bad:
        return f"teacher names must be letters, digits, '_' or '-' (they name directories): {bad}"
    if not all(isinstance(block, dict) for block in v.values()):
        return "each teacher is a mapping of overrides of the teacher block (e.g. {seed: 1}), or {}"
    return None


def _top_k(v):
    return None if v >= 1 else "must be >= 1 (or null: store every logit)"


def _open_unit(v):
    return None if 0 < v <= 1 else "must be in (0, 1]"


def _at_least_one(v):
    return None if v >= 1 else "must be >= 1"


def _auto_or_at_least_one(v):
    if v == "auto" or (isinstance(v, int) and not isinstance(v, bool) and v >= 1):
        return None
    return "must be auto or an integer >= 1"


def train_block(lr, batch, steps, eval_steps) -> dict:
    """A ``train`` block (the students' ``train``, the teacher's ``teacher.train``) with these defaults."""
    return {
        "learning_rate": Field(FLOAT, positive, lr),
        "batch_size": Field(INT, positive, batch),
        "max_steps": Field(INT, positive, steps),
        "weight_decay": Field(FLOAT, non_negative, 0.0),
        "lr_scheduler": Field(STR, one_of("constant", "linear", "cosine"), "constant"),
        "warmup_steps": Field(INT, non_negative, 0),
        "max_grad_norm": Field(FLOAT, non_negative, 0.0, help="0 disables clipping"),
        "eval_steps": Field(INT, positive, eval_steps),
        "logging_steps": Field(INT, positive, 50),
        "save_steps": Field(INT, positive, 500, help="checkpoint interval, for resuming"),
        "precision": Field(STR, one_of("auto", "fp32", "fp16", "bf16"), "auto"),
        "full_determinism": Field((bool,), None, False,
                                  help="GPU: deterministic kernels only (slower); CPU runs are deterministic anyway"),
        "compile": Field((bool,), None, False,
                         help="torch.compile the model trained and a live teacher (GPU: fewer kernel launches per "
                              "step; compiling takes a while first, and the bits differ from eager ones)"),
    }


CPU_THREADS = Field(INT, non_negative, 1, help="torch threads on CPU; 0: one per core")
COMPUTE = {
    "processes": Field(INT, _at_least_one, 1,
                       help="processes per training and inference stage (accelerate launch; GPUs: one each)"),
    "seed_processes": Field((str, int), _auto_or_at_least_one, "auto",
                            help="CPU: the students' seeds trained side by side in this many forked processes, the "
                                 "same bits as one after the other (auto: one per core, at most one per seed, where "
                                 "it is safe: cpu_threads 1, compute.processes 1, no GPU; 1: one after the other)"),
}
TEACHER = {
    "checkpoint": Field(STR, None, None, nullable=True, help="a ready model (local dir or Hub id)"),
    "trust_remote_code": Field((bool,), None, False),
    "finetune": Field((bool,), None, True, help="hf pretrained teacher: false = use it as is"),
    "seed": Field(INT, non_negative, 0),
    "model": model_block("mlp", [256, 256], 0.2),
    "train": {
        **train_block(1e-3, 64, 4000, 100),
        "early_stopping_patience": Field(INT, positive, 15),
        "jitter": Field(INT, non_negative, 0, help="images: every training batch shifted afresh by up to this "
                                                   "many pixels each way, zero fill (Hinton et al. 2015)"),
    },
    "inference_batch_size": Field(INT, positive, 512),
    "logits_top_k": Field(INT, _top_k, None, nullable=True,
                          help="store only the k largest logits per row and the rest's mean and log-sum-exp "
                               "(large label sets; distillery/logits_top_k.py); null: every logit"),
    "generate": {  # sequence-level KD (kd.method seqkd): the transfer_logits stage samples and scores them once
        "sequences": Field(INT, non_negative, 0,
                           help="task causal_lm: training sequences whose first prompt_tokens the teacher continues "
                                "(one sampled continuation each, kd.method seqkd trains on them); 0: none"),
        "prompt_tokens": Field(INT, positive, 8, help="tokens of each training sequence kept as its prompt"),
        "temperature": Field(FLOAT, positive, 1.0, help="sampling temperature"),
        "top_p": Field(FLOAT, _open_unit, 1.0, help="nucleus sampling: the smallest set of tokens with this mass"),
        "seed": Field(INT, non_negative, 0, help="which sequences are prompts, and the sampling"),
    },
}
TEACHERS = Field((dict,), _teacher_names, {},
                 help="more teachers (kd.method multi_teacher): name -> overrides of the teacher block")
STUDENT_MODEL = student_model_block()
TRAIN = {
    "seeds": Field(LIST, _seed_list, [0, 1, 2, 3, 4]),
    **train_block(1e-2, 64, 1500, 100),
    "select": Field(STR, one_of("last", "best"), "best",
                    help="the checkpoint each student (distilled, hard, peers, generations) ends with: last = the "
                         "step max_steps; best = the highest validation accuracy at the evaluations every "
                         "eval_steps (ties: the earlier step; a checkpoint is saved at each)"),
}


def teacher_blocks(params: dict) -> list[tuple[str, dict]]:
    """(where, block) of the teacher and of every ``teachers.<name>``, in that order."""
    return [("teacher", params["teacher"])] + [(f"teachers.{n}", t) for n, t in params["teachers"].items()]


def check_training(params: dict, source: str) -> None:
    """Rules between training params: early stopping evaluates, jitter is for images, batches split evenly."""
    for where, teacher in teacher_blocks(params):
        train = teacher["train"]
        if teacher["checkpoint"] is None and train["eval_steps"] > train["max_steps"]:
            raise DistilleryError(
                f"{source}: {where}.train.eval_steps = {train['eval_steps']}: must be <= {where}.train.max_steps "
                f"({train['max_steps']}), else early stopping never evaluates"
            )
        if train["jitter"] and teacher["model"]["arch"] == "hf":
            raise DistilleryError(f"{source}: {where}.train.jitter = {train['jitter']}: jitter shifts images; "
                                  f"{where}.model.arch is hf (text)")
    n = params["compute"]["processes"]  # several processes split each batch between them (training.trainer)
    side_by_side = params["compute"]["seed_processes"]
    if side_by_side != "auto" and side_by_side > 1 and (params["cpu_threads"] != 1 or n > 1):
        raise DistilleryError(
            f"{source}: compute.seed_processes = {side_by_side}: forks one process per seed, which needs cpu_threads = "
            f"1 (it is {params['cpu_threads']}: a process forked after torch ran several threads hangs) and "
            f"compute.processes = 1 (it is {n}); set compute.seed_processes to auto or 1")
    blocks = [("train", params["train"])] + [(f"{where}.train", t["train"]) for where, t in teacher_blocks(params)]
    for where, block in blocks:
        if block["batch_size"] % n:
            raise DistilleryError(f"{source}: {where}.batch_size = {block['batch_size']}: must be a multiple of "
                                  f"compute.processes ({n}), which split each batch between them")
