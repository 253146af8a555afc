"""The params and checks of the methods that learn on the student's own samples (needs ``student_samples``):
``on_policy_gkd`` and ``minillm`` declare them once here, as methods do not import each other."""
from __future__ import annotations

from ..data.params import has_prompts
from ..schema import FLOAT, INT, Field, non_negative, positive, unit_interval

SAMPLING_PARAMS = {
    "student_data_fraction": Field(FLOAT, unit_interval, 0.5,
                                   help="λ: the fraction of training steps on the student's own samples "
                                        "(TRL's lmbda); the others train on the corpus"),
    "prompt_tokens": Field(INT, positive, 8, help="tokens of each training sequence kept as the prompt the "
                                                  "student continues (with data.prompt_column: each row's own "
                                                  "prompt instead)"),
    "max_new_tokens": Field(INT, positive, None, nullable=True,
                            help="the most tokens the student samples per prompt; null: up to data.max_length"),
    "start_step": Field(INT, non_negative, 0,
                        help="the first training step that may sample; the steps before it train on the corpus, "
                             "as the papers start from a supervised student"),
}


def check_sampling(params: dict, name: str) -> str | None:
    """An error text naming the param when ``kd.<name>``'s sampling cannot run with these params, else None."""
    if params["task"] != "causal_lm":
        return "samples the student's continuations of text prompts: language models only (task: causal_lm)"
    own, limit = params["kd"][name], params["data"]["max_length"]
    if not has_prompts(params["data"]):  # with prompts, each row's own prompt is continued up to the limit
        if own["prompt_tokens"] >= limit:
            return (f"kd.{name}.prompt_tokens = {own['prompt_tokens']} leaves no room to sample within "
                    f"data.max_length = {limit}")
        if own["max_new_tokens"] is not None and own["prompt_tokens"] + own["max_new_tokens"] > limit:
            return (f"kd.{name}.prompt_tokens + max_new_tokens = {own['prompt_tokens']} + {own['max_new_tokens']} "
                    f"is above data.max_length = {limit} (the longest sequence the models take); null samples up "
                    "to it")
    if own["start_step"] >= params["train"]["max_steps"]:
        return (f"kd.{name}.start_step = {own['start_step']} is not below train.max_steps = "
                f"{params['train']['max_steps']}: no step would sample")
    return None
