"""prepare: data.source -> data/prepared/ (train/validation/test with stable ids; task causal_lm: token sequences
and the tokenizer)."""
from pathlib import Path

from distillery.cli import run_stage
from distillery.data.prepare import prepare
from distillery.params import load_params


def main() -> None:
    params = load_params()
    prepared = prepare(params["data"], Path("data/prepared"), task=params["task"])
    meta = prepared.meta
    if prepared.is_lm:
        print(f"prepared {meta['sizes']} sequences of at most {meta['max_length']} tokens ({meta['packing']}) from "
              f"{params['data']['source']}: tokens {meta['tokens']}, cut {meta['tokens_cut']}, empty rows dropped "
              f"{meta['empty_rows']}; tokenizer {meta['tokenizer']} ({meta['vocab_size']} tokens)")
        return
    print(f"prepared {meta['sizes']} from {params['data']['source']}, labels {prepared.label_names}")


if __name__ == "__main__":
    run_stage(main, uses_torch=False)
