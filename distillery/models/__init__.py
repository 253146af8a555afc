"""Models: what is trained and how it is run.

``zoo`` (MLP/CNN classifiers as ``PreTrainedModel``s and ``load_model`` for every model), ``text`` (Hugging Face
text models and tokenizers), ``tokenization`` (tokenized splits cached outside the DVC outputs), ``inference``
(a model's logits over a split, in row order; split across processes), ``params`` (the ``model`` blocks).

May import: ``distillery.data`` and the shared ground.
"""
