"""sources: the sha256 of each local file and checkpoint params.yaml names -> data/sources/<stage>.json, which the
stages reading them depend on (DVC runs it every time: ``always_changed``; see distillery/data/sources.py)."""
from distillery.cli import run_stage
from distillery.data.sources import watch
from distillery.params import load_params


def main() -> None:
    for change in watch(load_params()):
        print(change)


if __name__ == "__main__":
    run_stage(main, uses_torch=False)
