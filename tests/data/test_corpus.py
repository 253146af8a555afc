"""Language-model corpora (task: causal_lm), offline: tiny corpora written here, ids and splits, empty and short rows,
truncation and packing counted by hand with a word-level tokenizer, the byte-level BPE (round trips, deterministic,
trained on train only), checkpoint tokenizers, and the round trip through load_prepared."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from distillery.data import corpus
from distillery.data.corpus import load_tokenizer
from distillery.data.prepare import prepare
from distillery.data.prepared import UNLABELLED, load_prepared, sequence_lengths
from distillery.errors import DistilleryError

from ..conftest import make_params

HF = {"model": {"arch": "hf", "config": {"model_type": "gpt2"}}}
WORDS = ["a", "b", "c", "d", "e"]


def corpus_params(**data) -> dict:
    """The validated data block of a causal_lm run."""
    data = {"vocab_size": 300, "max_length": 16, "validation_fraction": 0.2, "test_fraction": 0.2, **data}
    return make_params(task="causal_lm", data=data, teacher=HF, student=HF)["data"]


def prepare_corpus(tmp_path: Path, out: str = "prepared", **data):
    return prepare(corpus_params(**data), tmp_path / out, tmp_path, task="causal_lm")


def write_jsonl(path: Path, texts: list, **columns) -> Path:
    pd.DataFrame({"text": texts, **columns}).to_json(path, orient="records", lines=True)
    return path


def word_tokenizer(out: Path) -> Path:
    """A word-level tokenizer (one token per word a..e, "<eos>"; "~" is removed, so "~~" has no tokens): token
    counts by hand."""
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {"<eos>": 0, "<unk>": 1, **{w: i + 2 for i, w in enumerate(WORDS)}}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.normalizer = normalizers.Replace("~", "")
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<eos>", unk_token="<unk>").save_pretrained(out)
    return out


def ids_of(words: str) -> list[int]:
    return [WORDS.index(w) + 2 for w in words.split()]


def sentences(n: int, seed: int = 0) -> list[str]:
    rng = np.random.default_rng(seed)
    words = ["the", "cat", "sat", "on", "a", "mat", "and", "dog", "ran", "far", "away", "home"]
    return [" ".join(rng.choice(words, rng.integers(2, 12))) for _ in range(n)]


@pytest.fixture
def hand(tmp_path) -> Path:
    """One JSON Lines file per split, known token counts with the word tokenizer (eos included): train 4, 3, 2, 7
    (+ an empty and a whitespace-only row, and "~~", which has no tokens), validation 3, 2, test 7."""
    write_jsonl(tmp_path / "train.jsonl", ["a b c", "d e", "", "a", "  \t ", "b c d e a b", "~~"],
                label=[0, 1, 0, 1, 0, 1, 0])  # a label column is ignored
    write_jsonl(tmp_path / "validation.jsonl", ["a b", "c"])
    write_jsonl(tmp_path / "test.jsonl", ["a b c d e a"])
    word_tokenizer(tmp_path / "words")
    return tmp_path


FILES = {"train": "train.jsonl", "validation": "validation.jsonl", "test": "test.jsonl"}


def rows(split) -> list[list[int]]:
    return [list(r) for r in split.dataset["input_ids"]]


def test_truncation_keeps_one_sequence_per_row_with_eos_and_counts_the_cut_tokens(hand):
    prepared = prepare_corpus(hand, source="files", files=FILES, tokenizer="words", max_length=5)
    meta = prepared.meta
    assert meta["sizes"] == {"train": 4, "validation": 2, "test": 1}
    # 4 + 3 + 2 + 7 (cut to 5) | 3 + 2 | 7 (cut to 5)
    assert meta["tokens"] == {"train": 14, "validation": 5, "test": 5}
    assert meta["tokens_cut"] == {"train": 2, "validation": 0, "test": 2}
    assert meta["empty_rows"] == {"train": 2, "validation": 0, "test": 0}
    assert meta["short_rows"] == {"train": 1, "validation": 0, "test": 0}
    assert meta["tokenizer"] == "words" and meta["vocab_size"] == 7 and meta["eos_token_id"] == 0
    train = prepared.splits["train"]
    assert train.ids.tolist() == [0, 1, 3, 5]  # positions in the source: the empty rows 2, 4 and "~~" (6) dropped
    assert rows(train) == [ids_of("a b c") + [0], ids_of("d e") + [0], ids_of("a") + [0], ids_of("b c d e a")]
    assert prepared.splits["validation"].ids.tolist() == [7, 8]
    assert prepared.splits["test"].ids.tolist() == [9]
    assert meta["split_origin"] == {"train": "source train", "validation": "source validation", "test": "source test"}


def test_packing_joins_the_rows_in_id_order_and_cuts_them_into_chunks(hand):
    prepared = prepare_corpus(hand, source="files", files=FILES, tokenizer="words", max_length=5, packing="pack")
    meta = prepared.meta
    # train: 4 + 3 + 2 + 7 = 16 tokens = 3 chunks of 5 and 1 token, dropped; validation 5 = 1 chunk;
    # test 7 = a chunk of 5 and one of 2
    assert meta["sizes"] == {"train": 3, "validation": 1, "test": 2}
    assert meta["tokens"] == {"train": 15, "validation": 5, "test": 7}
    assert meta["tokens_cut"] == {"train": 1, "validation": 0, "test": 0}
    stream = ids_of("a b c") + [0] + ids_of("d e") + [0] + ids_of("a") + [0] + ids_of("b c d e a b") + [0]
    assert rows(prepared.splits["train"]) == [stream[0:5], stream[5:10], stream[10:15]]
    assert prepared.splits["train"].ids.tolist() == [0, 1, 2]  # chunk numbers
    assert rows(prepared.splits["test"]) == [ids_of("a b c d e"), ids_of("a") + [0]]
    assert sequence_lengths(prepared.splits["test"]).tolist() == [5, 2]


@pytest.mark.parametrize("n,max_length", [(7, 3), (8, 3), (9, 3), (10, 4)])
def test_pack_chunk_count_is_the_ceiling_unless_one_token_is_left(n, max_length):
    lengths, values, cut = corpus.pack(np.arange(n, dtype=np.int32), np.array([n]), max_length)
    full, rest = divmod(n, max_length)
    assert len(lengths) == (-(-n // max_length) if rest != 1 else full)
    assert cut == (1 if rest == 1 else 0)
    assert values.tolist() == list(range(n - cut)) and lengths.sum() == n - cut


def test_the_corpus_round_trips_through_load_prepared(tmp_path):
    write_jsonl(tmp_path / "c.jsonl", sentences(60))
    prepared = prepare_corpus(tmp_path, source="file:c.jsonl", max_length=8)
    loaded = load_prepared(tmp_path / "prepared")
    assert loaded.is_lm and prepared.is_lm and not loaded.is_text
    assert loaded.label_names == [] and loaded.input_shape == [8] and loaded.num_labels == 0
    assert loaded.meta == json.loads((tmp_path / "prepared" / "meta.json").read_text())
    for name, split in loaded.splits.items():
        assert split.inputs is None
        assert split.ids.dtype == np.int64 and (np.diff(split.ids) > 0).all()
        assert (split.labels == UNLABELLED).all() and len(split.labels) == len(split.ids)
        assert split.dataset.features["id"].dtype == "int64"
        assert split.dataset.features["input_ids"].feature.dtype == "int32"
        lengths = sequence_lengths(split)
        assert lengths.dtype == np.int64
        assert lengths.tolist() == [len(r) for r in split.dataset["input_ids"]]
        assert int(lengths.sum()) == loaded.meta["tokens"][name] and (lengths <= 8).all()
        assert len(split.ids) == loaded.meta["sizes"][name]
    train = loaded.splits["train"].dataset
    picked = train.select([2, 0])  # a selection: the lengths of the selected rows, in its order
    assert sequence_lengths(picked).tolist() == [len(train[2]["input_ids"]), len(train[0]["input_ids"])]
    tokenizer = load_tokenizer(tmp_path / "prepared")
    assert len(tokenizer) == loaded.meta["vocab_size"] and tokenizer.model_max_length == 8


def test_one_file_is_split_at_random_with_the_seed_and_ids_are_positions(tmp_path):
    texts = sentences(50)
    write_jsonl(tmp_path / "c.jsonl", texts)
    first = prepare_corpus(tmp_path, "a", source="file:c.jsonl", max_length=64)
    again = prepare_corpus(tmp_path, "b", source="file:c.jsonl", max_length=64)
    other = prepare_corpus(tmp_path, "c", source="file:c.jsonl", max_length=64, split_seed=1)
    assert first.meta["sizes"] == {"train": 32, "validation": 8, "test": 10}  # validation: 20 % of the other 40
    ids = {name: split.ids.tolist() for name, split in first.splits.items()}
    assert sorted(sum(ids.values(), [])) == list(range(50))
    assert ids == {name: split.ids.tolist() for name, split in again.splits.items()}
    assert ids["test"] != other.splits["test"].ids.tolist()
    tokenizer = load_tokenizer(tmp_path / "a")
    for split in first.splits.values():  # every row: its text's tokens and the eos
        for row_id, tokens in zip(split.ids, rows(split)):
            assert tokens == tokenizer(texts[row_id], add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]


def test_id_column_gives_the_ids_and_a_source_without_test_scores_its_validation(tmp_path):
    import datasets

    (tmp_path / "hub").mkdir()
    texts = sentences(40)
    for split, part in (("train", slice(0, 30)), ("validation", slice(30, 40))):
        datasets.Dataset.from_dict({"doc": [1000 + i for i in range(40)][part], "body": texts[part]}).to_parquet(
            tmp_path / "hub" / f"{split}.parquet")
    prepared = prepare_corpus(tmp_path, source="hf:hub", text_column="body", id_column="doc", max_length=64)
    assert prepared.splits["test"].ids.tolist() == list(range(1030, 1040))
    assert sorted([*prepared.splits["train"].ids, *prepared.splits["validation"].ids]) == list(range(1000, 1030))
    assert prepared.meta["sizes"] == {"train": 24, "validation": 6, "test": 10}
    assert prepared.meta["split_origin"]["test"] == "source validation"
    assert prepared.meta["split_origin"]["validation"] == "20 % of source train"


def test_max_train_examples_keeps_a_seeded_subset_of_train(tmp_path):
    write_jsonl(tmp_path / "c.jsonl", sentences(100))
    full = prepare_corpus(tmp_path, "full", source="file:c.jsonl")
    capped = prepare_corpus(tmp_path, "capped", source="file:c.jsonl", max_train_examples=10)
    again = prepare_corpus(tmp_path, "again", source="file:c.jsonl", max_train_examples=10)
    assert capped.meta["sizes"] == {"train": 10, "validation": 16, "test": 20}
    assert set(capped.splits["train"].ids) < set(full.splits["train"].ids)
    assert capped.splits["train"].ids.tolist() == again.splits["train"].ids.tolist()
    for name in ("validation", "test"):
        assert capped.splits[name].ids.tolist() == full.splits[name].ids.tolist()
    assert "a random 10 of its 64 rows (data.max_train_examples)" in capped.meta["split_origin"]["train"]


def test_empty_rows_are_dropped_and_counted_in_their_split(tmp_path):
    from distillery.data.splitting import random_split_indices

    texts = sentences(40)
    blank = [0, 7, 13, 21, 33]
    for i in blank:
        texts[i] = " " if i % 2 else ""
    write_jsonl(tmp_path / "c.jsonl", texts)
    prepared = prepare_corpus(tmp_path, source="file:c.jsonl", max_length=64)
    index = random_split_indices(40, corpus_params(source="file:c.jsonl"), None)  # the split is made before empty rows are dropped
    for name, split in prepared.splits.items():
        assert split.ids.tolist() == sorted(set(index[name]) - set(blank))
        assert prepared.meta["empty_rows"][name] == len(set(index[name]) & set(blank))
    assert sum(prepared.meta["empty_rows"].values()) == 5


def test_an_all_empty_corpus_is_refused_before_any_tokenizer_is_trained(tmp_path, monkeypatch):
    monkeypatch.setattr(corpus, "train_bpe", lambda *a: pytest.fail("a tokenizer was trained"))
    write_jsonl(tmp_path / "c.jsonl", ["", "   ", "\n\t"])
    with pytest.raises(DistilleryError, match=r"c\.jsonl: all 3 rows are empty or whitespace-only in column 'text'"):
        prepare_corpus(tmp_path, source="file:c.jsonl")
    write_jsonl(tmp_path / "train.jsonl", sentences(20))
    write_jsonl(tmp_path / "validation.jsonl", [" ", None])
    with pytest.raises(DistilleryError, match=r"validation\.jsonl: all 2 rows are empty or whitespace-only"):
        prepare_corpus(tmp_path, source="files", files={"train": "train.jsonl", "validation": "validation.jsonl"})


def test_a_split_left_without_text_is_refused_naming_it(tmp_path, monkeypatch):
    monkeypatch.setattr(corpus, "train_bpe", lambda *a: pytest.fail("a tokenizer was trained"))
    texts = sentences(10)
    from distillery.data.splitting import random_split_indices

    # the rows split_seed 0 puts in test, blanked

    test_rows = random_split_indices(10, corpus_params(source="file:c.jsonl"), None)["test"]
    for i in test_rows:
        texts[i] = "  "
    write_jsonl(tmp_path / "c.jsonl", texts)
    with pytest.raises(DistilleryError, match=r"'file:c\.jsonl': the test split \(20 % of the rows\) has no text: all "
                                              rf"{len(test_rows)} of its rows are empty"):
        prepare_corpus(tmp_path, source="file:c.jsonl")


def test_the_bpe_is_byte_level_and_round_trips_any_text(tmp_path):
    write_jsonl(tmp_path / "c.jsonl", sentences(60))
    prepare_corpus(tmp_path, source="file:c.jsonl", vocab_size=280)
    tokenizer = load_tokenizer(tmp_path / "prepared")
    assert tokenizer.unk_token is None
    assert tokenizer.eos_token == tokenizer.bos_token == tokenizer.pad_token == "<|endoftext|>"
    assert len(tokenizer) <= 280
    for text in ["naïve café, Straße", "日本語のテキスト 🤖🧪", " leading and trailing  ", "tabs\tand\nnewlines\r\n",
                 "e\u0301 combining", "\x00\x7f control", "never seen: ₿ ∮ ﷺ"]:
        assert tokenizer.decode(tokenizer(text, add_special_tokens=False)["input_ids"]) == text


def test_the_bpe_is_deterministic_and_learns_from_train_only(tmp_path):
    write_jsonl(tmp_path / "train.jsonl", sentences(60))
    write_jsonl(tmp_path / "test.jsonl", ["xyzxyz qxyzq " * 20] * 10)
    files = {"train": "train.jsonl", "test": "test.jsonl"}
    saved = lambda out: (tmp_path / out / "tokenizer" / "tokenizer.json").read_bytes()  # noqa: E731
    first = prepare_corpus(tmp_path, "a", source="files", files=files)
    again = prepare_corpus(tmp_path, "b", source="files", files=files)
    other = prepare_corpus(tmp_path, "c", source="files", files=files, vocab_size=270)
    assert other.meta["vocab_size"] == 270 < first.meta["vocab_size"] <= 300
    assert saved("a") == saved("b")
    assert saved("a") != saved("c")  # the comparison can fail
    for name in first.splits:
        assert rows(first.splits[name]) == rows(again.splits[name])
    tokenizer = load_tokenizer(tmp_path / "a")
    merged = [tokenizer.convert_tokens_to_string([t]) for t in tokenizer.get_vocab() if len(t) > 1]
    assert any("cat" in t for t in merged)  # train words were merged
    assert not any("xy" in t or "yz" in t for t in merged)  # test words were not


def test_a_saved_tokenizer_directory_is_used_as_it_is(tmp_path):
    write_jsonl(tmp_path / "c.jsonl", sentences(60))
    bpe = prepare_corpus(tmp_path, "bpe", source="file:c.jsonl", vocab_size=300, max_length=12)
    reused = prepare_corpus(tmp_path, "reused", source="file:c.jsonl", tokenizer=str(tmp_path / "bpe" / "tokenizer"),
                            vocab_size=400, max_length=12)
    assert reused.meta["tokenizer"] == str(tmp_path / "bpe" / "tokenizer")
    assert reused.meta["vocab_size"] == bpe.meta["vocab_size"]  # data.vocab_size is the BPE's, unused here
    for name in bpe.splits:
        assert rows(reused.splits[name]) == rows(bpe.splits[name])
    assert load_tokenizer(tmp_path / "reused").get_vocab() == load_tokenizer(tmp_path / "bpe").get_vocab()


def test_a_tokenizer_without_eos_is_refused_naming_it(tmp_path):
    from ..text_utils import train_tokenizer

    texts = sentences(30)
    write_jsonl(tmp_path / "c.jsonl", texts)
    train_tokenizer(texts, tmp_path / "wordpiece")
    with pytest.raises(DistilleryError, match=r"data.tokenizer = 'wordpiece': the tokenizer has no eos token"):
        prepare_corpus(tmp_path, source="file:c.jsonl", tokenizer="wordpiece")
    with pytest.raises(DistilleryError, match=r"data.tokenizer = .*no_such_dir.: no such folder"):
        prepare_corpus(tmp_path, source="file:c.jsonl", tokenizer=str(tmp_path / "no_such_dir"))


def test_a_checkpoint_without_pad_gets_eos_as_pad_and_the_prepared_max_length(hand):
    prepare_corpus(hand, source="files", files=FILES, tokenizer="words", max_length=5)
    tokenizer = load_tokenizer(hand / "prepared")
    assert tokenizer.pad_token == "<eos>" and tokenizer.model_max_length == 5
    with pytest.raises(DistilleryError, match="no tokenizer here"):
        load_tokenizer(hand)


@pytest.fixture
def prompted(tmp_path) -> Path:
    """Prompts and responses per split, token counts by hand with the word tokenizer: train prompts of 2, 1, 4, 3
    tokens (the 4-token one fills max_length 4: dropped) and a blank prompt, responses of 1, 3, 1, 2 (+ eos) and a
    blank one; validation and test one row each."""
    write_jsonl(tmp_path / "train.jsonl", ["e", "b c d", "a", "c d", "a", ""],
                prompt=["a b", "c", "a b c d", "e e e", "  ", "b"])
    write_jsonl(tmp_path / "validation.jsonl", ["d e"], prompt=["a"])
    write_jsonl(tmp_path / "test.jsonl", ["a b c d e"], prompt=["e d"])
    word_tokenizer(tmp_path / "words")
    return tmp_path


def test_prompts_are_kept_whole_before_their_responses_and_their_lengths_stored(prompted, caplog):
    import logging

    from distillery.data.prepared import prompt_lengths, target_counts

    with caplog.at_level(logging.WARNING):
        prepared = prepare_corpus(prompted, source="files", files=FILES, tokenizer="words", max_length=4,
                                  prompt_column="prompt")
    assert "files: rows dropped, empty in a column read: train 2 (ids [4, 5])" in caplog.text  # named, not just counted
    assert "files: rows dropped, a prompt of data.max_length = 4 tokens or more: train 1 (ids [2])" in caplog.text
    assert "prompts_also_in_train" not in prepared.meta  # validation's "a" and test's "e d": not train prompts
    meta = prepared.meta
    assert prepared.has_prompts and meta["prompt_column"] == "prompt" and meta["prompt_template"] is None
    assert meta["empty_rows"] == {"train": 2, "validation": 0, "test": 0}  # a blank prompt, a blank response
    assert meta["long_prompts"] == {"train": 1, "validation": 0, "test": 0}  # "a b c d": no room left
    train = prepared.splits["train"]
    assert train.ids.tolist() == [0, 1, 3]
    # "a b" + "e" + eos | "c" + "b c d" + eos, cut to 4 | "e e e" + "c d" + eos, cut to 4
    assert rows(train) == [ids_of("a b e") + [0], ids_of("c b c d"), ids_of("e e e c")]
    assert prompt_lengths(train).tolist() == [2, 1, 3]
    assert meta["tokens_cut"] == {"train": 1 + 2, "validation": 0, "test": 4}
    assert meta["target_tokens"] == {"train": 2 + 3 + 1, "validation": 3, "test": 2}
    assert rows(prepared.splits["test"]) == [ids_of("e d a b")]
    assert prompt_lengths(prepared.splits["test"]).tolist() == [2]
    assert target_counts(sequence_lengths(train), prompt_lengths(train)).tolist() == [2, 3, 1]
    again = load_prepared(prompted / "prepared")
    assert prompt_lengths(again.splits["train"]).tolist() == [2, 1, 3] and again.has_prompts


def test_a_prompt_template_fills_in_each_row_s_columns(prompted):
    from distillery.data.prepared import prompt_lengths

    prepared = prepare_corpus(prompted, source="files", files=FILES, tokenizer="words", max_length=8,
                              prompt_template="{prompt} a")
    assert prepared.meta["prompt_template"] == "{prompt} a" and prepared.has_prompts
    assert rows(prepared.splits["validation"]) == [ids_of("a a d e") + [0]]
    assert prompt_lengths(prepared.splits["validation"]).tolist() == [2]
    with pytest.raises(DistilleryError, match=r"train\.jsonl: missing column\(s\) 'review' \(data\.prompt_template\)"):
        prepare_corpus(prompted, out="other", source="files", files=FILES, tokenizer="words",
                       prompt_template="{prompt} {review}")


def test_validation_and_test_prompts_train_also_holds_are_counted_and_warned_about(prompted, caplog):
    """A helper's templated corpus had 98 of 200 test prompts in train, unsaid: exact match partly measured memory."""
    import logging

    write_jsonl(prompted / "validation.jsonl", ["d e", "e"], prompt=["a b", "d"])  # "a b": a train prompt
    with caplog.at_level(logging.WARNING):
        prepared = prepare_corpus(prompted, source="files", files=FILES, tokenizer="words", max_length=8,
                                  prompt_column="prompt")
    assert prepared.meta["prompts_also_in_train"] == {"validation": 1, "test": 0}
    assert "files: the prompt of 1 of the 2 validation rows also stands in train, word for word" in caplog.text


def test_a_split_whose_every_prompt_fills_max_length_is_refused_naming_the_column(prompted):
    with pytest.raises(DistilleryError, match=r"every row of the test split has a prompt of data.max_length = 2 "
                                              r"tokens or more \(1 rows, column 'prompt'\)"):
        prepare_corpus(prompted, source="files", files=FILES, tokenizer="words", max_length=2, prompt_column="prompt")


def test_plain_text_has_no_prompt_column_and_every_next_token_is_a_target(hand):
    from distillery.data.prepared import prompt_lengths

    prepared = prepare_corpus(hand, source="files", files=FILES, tokenizer="words", max_length=5)
    assert not prepared.has_prompts and "prompt_length" not in prepared.splits["train"].dataset.column_names
    assert prompt_lengths(prepared.splits["train"]).tolist() == [0, 0, 0, 0]
    assert prepared.meta["target_tokens"] == {"train": 14 - 4, "validation": 5 - 2, "test": 4}


def test_join_rows_puts_each_row_s_second_part_after_its_first():
    tokens, lengths = corpus.join_rows(np.array([1, 2, 3]), np.array([2, 0, 1]), np.array([7, 8, 9, 6]),
                                       np.array([1, 2, 1]))
    assert tokens.tolist() == [1, 2, 7, 8, 9, 3, 6] and lengths.tolist() == [3, 2, 2]


def test_numeric_cells_are_written_as_their_numbers():
    """A label column with a blank cell is read as floats; its labels stay ``1`` and ``0`` (not ``1.0``) in the
    responses and in a template."""
    labels = pd.Series([1.0, np.nan, 0.0]).dropna()
    assert corpus.cell_texts(labels).tolist() == ["1", "0"]
    assert corpus.cell_texts(pd.Series([0.5, 2.0])).tolist() == ["0.5", "2.0"]
    assert corpus.cell_texts(pd.Series([3, 4])).tolist() == ["3", "4"]
    assert corpus.cell_texts(pd.Series(["a", "1.0"])).tolist() == ["a", "1.0"]
    df = pd.DataFrame({"review": ["good", "bad"], "stars": [5.0, 1.0]})
    assert corpus.prompt_texts(df, None, "{review} ({stars} stars):") == ["good (5 stars):", "bad (1 stars):"]
    assert corpus.prompt_texts(df, "stars", None) == ["5", "1"]


def test_source_splits_read_a_dataset_s_own_split_names(tmp_path):
    """A Hub layout with train_sft, test_sft and train_gen splits (as HuggingFaceH4/ultrachat_200k has)."""
    import datasets

    (tmp_path / "chats" / "data").mkdir(parents=True)
    texts = sentences(60)
    for split, part in (("train_sft", slice(0, 40)), ("test_sft", slice(40, 50)), ("train_gen", slice(50, 60))):
        datasets.Dataset.from_dict({"text": texts[part]}).to_parquet(
            tmp_path / "chats" / "data" / f"{split}-00000-of-00001.parquet")
    with pytest.raises(DistilleryError, match=r"splits \['test_sft', 'train_gen', 'train_sft'\]; expected train .* "
                                              r"name the ones to read in data.source_splits"):
        prepare_corpus(tmp_path, source="hf:chats", max_length=64)
    prepared = prepare_corpus(tmp_path, source="hf:chats", max_length=64,
                              source_splits={"train": "train_sft", "test": "test_sft"})
    assert prepared.meta["sizes"] == {"train": 32, "validation": 8, "test": 10}
    with pytest.raises(DistilleryError, match=r"data.source_splits = \{'train': 'sft'\}\): Unknown split \"sft\""):
        prepare_corpus(tmp_path, out="other", source="hf:chats", max_length=64, source_splits={"train": "sft"})


def test_csv_cells_that_read_as_numbers_stay_text_as_written(tmp_path):
    """A prompt or response cell of a CSV such as `` 7`` or ``007`` is text: pandas alone would make them 7."""
    rows = 40
    pd.DataFrame({"prompt": ["007" if i % 2 else "1.50" for i in range(rows)],
                  "answer": [" 7" if i % 2 else " 1.0" for i in range(rows)]}).to_csv(tmp_path / "n.csv", index=False)
    prepared = prepare_corpus(tmp_path, source="file:n.csv", prompt_column="prompt", text_column="answer")
    tokenizer = load_tokenizer(tmp_path / "prepared")
    split = prepared.splits["train"].dataset
    for row_id, tokens, prompt_length in zip(split["id"], split["input_ids"], split["prompt_length"]):
        assert tokenizer.decode(tokens[:prompt_length]) == ("007" if row_id % 2 else "1.50")
        assert tokenizer.decode(tokens[prompt_length:]) == (" 7" if row_id % 2 else " 1.0") + "<|endoftext|>"
