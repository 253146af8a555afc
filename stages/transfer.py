"""transfer: data.transfer -> data/transfer/ (rows learnt from the teacher's soft targets only; empty when off)."""
from pathlib import Path

from distillery.cli import run_stage
from distillery.data.omitted import resolve as resolve_omitted
from distillery.params import load_params
from distillery.data.prepared import load_prepared
from distillery.data.transfer import TRANSFER_DIR, build_transfer, describe, save_transfer


def main() -> None:
    params = load_params()
    prepared = load_prepared(Path("data/prepared"))
    if not prepared.is_lm:  # language models: no classes, and no transfer set (the params refuse one)
        resolve_omitted(params["data"]["omit_classes"], prepared.label_names)  # refused here, before any training
    transfer = build_transfer(params["data"], prepared)
    save_transfer(transfer, TRANSFER_DIR)
    print(f"transfer set: {describe(transfer.meta)}")


if __name__ == "__main__":
    run_stage(main, uses_torch=False)
