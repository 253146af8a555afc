"""The params schema's shared helpers: nested params as dotted keys and back, merging."""
from distillery.schema import deep_merge, flatten, unflatten


def test_dotted_keys_and_nested_params_turn_into_each_other():
    nested = {"kd": {"T": 4.0, "dkd": {"beta": 8.0}}, "train": {"seeds": [0, 1]}}
    assert flatten(nested) == {"kd.T": 4.0, "kd.dkd.beta": 8.0, "train.seeds": [0, 1]}
    assert unflatten(flatten(nested)) == nested
    assert unflatten({"data.scaling": "minmax", "data.transfer.augment": 1}) == {
        "data": {"scaling": "minmax", "transfer": {"augment": 1}}}
    assert deep_merge(nested, unflatten({"kd.dkd.beta": 4.0})) == {
        "kd": {"T": 4.0, "dkd": {"beta": 4.0}}, "train": {"seeds": [0, 1]}}
