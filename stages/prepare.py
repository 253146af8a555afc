"""prepare: data.source -> data/prepared/ (train/validation/test with stable ids)."""
from pathlib import Path

from distillery.cli import run_stage
from distillery.data.prepare import prepare
from distillery.params import load_params


def main() -> None:
    params = load_params()
    prepared = prepare(params["data"], Path("data/prepared"))
    print(f"prepared {prepared.meta['sizes']} from {params['data']['source']}, labels {prepared.label_names}")


if __name__ == "__main__":
    run_stage(main, uses_torch=False)
