"""distill: one student per seed, trained with ``kd.method`` (stored teacher logits joined by id, or
whatever else the method declares it needs), on the labelled rows and the transfer set (data.transfer) when on."""
from pathlib import Path

from distillery.cli import run_stage
from distillery.io import DISTILL_SECONDS_LINE
from distillery.methods import get_method
from distillery.params import load_params
from distillery.data.prepared import load_prepared
from distillery.training.students import target_temperature, train_students
from distillery.data.transfer import enabled, load_scored


def main() -> None:
    params = load_params()
    prepared = load_prepared(Path("data/prepared"))
    method = get_method(params["kd"]["method"])
    if prepared.is_lm:  # one distribution per token: the teacher's stored per-token logits
        from distillery.training.causal_lm import train_lm_students

        seconds = train_lm_students(method, params, prepared, Path("models/students/kd"),
                                    live_root=Path("reports/training/kd"), logits_dir=Path("data/teacher_logits"),
                                    keep_runs=True)
    else:
        T = target_temperature(method.hyperparams(params["kd"]))  # top-k logits are rebuilt for the method's T
        seconds = train_students(method, params, prepared, Path("models/students/kd"),
                                 live_root=Path("reports/training/kd"), logits_dir=Path("data/teacher_logits"),
                                 transfer=load_scored(prepared, T=T) if enabled(params["data"]["transfer"]) else None,
                                 keep_runs=True)
    if seconds is not None:  # None in the other processes of compute.processes > 1
        print(f"{DISTILL_SECONDS_LINE}{seconds:.2f} s")

if __name__ == "__main__":
    run_stage(main, record=Path("reports/training/kd"), reads="student")
