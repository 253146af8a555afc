"""distillery/models/configs.py: a Hugging Face config override must name a setting of its config class."""
from __future__ import annotations

import json

import pytest
from transformers import BertConfig, GPT2Config

from distillery.errors import DistilleryError
from distillery.models.configs import check_config_overrides, known_keys
from distillery.params import validate


def test_known_keys_hold_the_stored_settings_their_aliases_and_settable_properties():
    bert = known_keys(BertConfig)
    assert {"num_hidden_layers", "hidden_size", "hidden_dropout_prob", "num_labels", "attn_implementation"} <= bert
    assert "n_layer" not in bert and "use_return_dict" not in bert  # GPT-2's name; a read-only property
    gpt2 = known_keys(GPT2Config)
    assert {"n_layer", "n_embd", "num_hidden_layers", "hidden_size"} <= gpt2  # attribute_map aliases


def test_a_typo_is_refused_naming_the_param_and_the_closest_setting():
    with pytest.raises(DistilleryError, match=r"^student.model.config.num_hiden_layers: not a setting of BertConfig "
                                              r"\(model_type 'bert'\); did you mean "
                                              r"'student.model.config.num_hidden_layers'\?$"):
        check_config_overrides({"config": {"model_type": "bert", "num_hiden_layers": 4}}, "student.model")
    with pytest.raises(DistilleryError, match=r"config.model_type = 'bret': not a model type of transformers; "
                                              r"did you mean 'bert'\?"):
        check_config_overrides({"config": {"model_type": "bret"}}, "student.model")
    check_config_overrides({"config": {"model_type": "gpt2", "n_layer": 1, "num_hidden_layers": 1}}, "student.model")


def test_a_value_the_config_class_refuses_is_refused_naming_the_block():
    with pytest.raises(DistilleryError, match=r"^student.model.config = \{'model_type': 'bert', 'num_hidden_layers': '4'\}: "
                                              r"BertConfig refuses it: .*num_hidden_layers.* expected int, got str"):
        check_config_overrides({"config": {"model_type": "bert", "num_hidden_layers": "4"}}, "student.model")


def test_a_local_checkpoint_gives_the_class_and_its_own_keys(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "bert", "gradient_checkpointing": False}))
    spec = {"pretrained": str(tmp_path), "config": {"hidden_dropout_prob": 0.2, "gradient_checkpointing": True}}
    check_config_overrides(spec, "teacher.model")  # a key of the checkpoint's own config.json is known
    with pytest.raises(DistilleryError, match=r"teacher.model.config.hiden_dropout_prob: not a setting of BertConfig"):
        check_config_overrides({**spec, "config": {"hiden_dropout_prob": 0.2}}, "teacher.model")
    with pytest.raises(DistilleryError, match=r"teacher.model.config = \{'hidden_dropout_prob': 'high'\}: BertConfig "
                                              r"refuses it"):
        check_config_overrides({**spec, "config": {"hidden_dropout_prob": "high"}}, "teacher.model")


def test_a_hub_id_and_a_checkpoint_with_its_own_config_class_are_not_checked(tmp_path):
    check_config_overrides({"pretrained": "someone/some-model", "config": {"anything": 1}}, "teacher.model")
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "my-own", "auto_map": {}}))
    check_config_overrides({"pretrained": str(tmp_path), "config": {"anything": 1}}, "teacher.model")


def test_validation_refuses_the_typo_before_any_work():
    raw = {"teacher": {"model": {"arch": "hf", "pretrained": "teacher-checkpoint"}},
           "student": {"model": {"arch": "hf", "tokenizer": "teacher",
                                 "config": {"model_type": "bert", "num_hidden_layer": 4}}},
           "data": {"source": "file:sentences.tsv", "text_column": "sentence"}}
    with pytest.raises(DistilleryError, match=r"^my.yaml: student.model.config.num_hidden_layer: not a setting"):
        validate(raw, "my.yaml")
    raw["student"]["model"]["config"]["num_hidden_layers"] = raw["student"]["model"]["config"].pop("num_hidden_layer")
    assert validate(raw)["student"]["model"]["config"]["num_hidden_layers"] == 4
