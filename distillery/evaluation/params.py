"""The evaluation params of params.yaml: the ``evaluate`` block and ``student.quantize`` (read by evaluate only)."""
from __future__ import annotations

from ..schema import FLOAT, INT, STR, Field, non_negative, one_of, positive

EVALUATE = {
    "ece_bins": Field(INT, positive, 15),
    "batch_size": Field(INT, positive, 512, help="inference batch, also the throughput batch"),
    "bootstrap_samples": Field(INT, positive, 10000, help="resamples for the KD - hard accuracy interval"),
    "bootstrap_seed": Field(INT, non_negative, 0),
    "timing_repeats": Field(INT, positive, 30, help="timed passes per model; the median is reported"),
    "timing_warmup": Field(INT, non_negative, 5, help="untimed passes before timing"),
    "timing_budget_s": Field(FLOAT, positive, 60.0,
                             help="seconds the latency and throughput timing of the teacher and the student may "
                                  "take, warm-up included (an int8 student's: a budget of its own): the rounds stop "
                                  "when it is spent, after at least 3 timed ones (a large model on a CPU: fewer "
                                  "passes than timing_repeats; the report gives the count)"),
    "judged_samples": Field(INT, non_negative, 256,
                            help="task causal_lm: test prompts every model continues by sampling, the teacher scoring "
                                 "the samples (teacher_nll_of_samples); 0: none"),
    "responses": Field(INT, non_negative, 256,
                       help="task causal_lm with data.prompt_column: test prompts every model answers greedily, each "
                            "answer scored against the reference response (ROUGE-L F1, exact match); 0: none"),
}
QUANTIZE = Field(STR, one_of("none", "int8"), "none",
                 help="evaluate only: int8 also scores every student with its Linear layers dynamically "
                      "quantized to int8 (distillery/evaluation/quantization.py)")
