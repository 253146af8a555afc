"""Chats (data.messages_column, data.chat_template), offline: a ChatML-like template on a word-level tokenizer
whose end of turn is its eos (token counts by hand), the byte-level BPE trained here with a template of its own
(decoded back to the rendered text), conversations from JSON Lines and CSV, blank and bad rows."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from distillery.data import chats
from distillery.data.corpus import load_tokenizer
from distillery.data.prepared import prompt_lengths
from distillery.errors import DistilleryError

from .test_corpus import FILES, WORDS, prepare_corpus, rows

# ChatML without newlines, so a word-level tokenizer splits it on spaces
TEMPLATE = ("{% for m in messages %}<|im_start|>{{ m['role'] }} {{ m['content'] }}<|im_end|> {% endfor %}"
            "{% if add_generation_prompt %}<|im_start|>assistant {% endif %}")
CHATML = ("{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
          "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")
ROLES = ["system", "user", "assistant"]
START, END = 0, 1  # <|im_start|>, <|im_end|> (the eos)


def chat_tokenizer(out: Path, template: str | None = TEMPLATE) -> Path:
    """Words a..e and the roles, one token each; <|im_start|> and <|im_end|> special, <|im_end|> the eos (as
    in SmolLM2-Instruct); the template saved with it."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {"<|im_start|>": START, "<|im_end|>": END, "<unk>": 2, **{w: i + 3 for i, w in enumerate(WORDS + ROLES)}}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tok.add_special_tokens(["<|im_start|>", "<|im_end|>"])
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|im_end|>", unk_token="<unk>")
    fast.chat_template = template
    fast.save_pretrained(out)
    return out


def ids(words: str) -> list[int]:
    return [(WORDS + ROLES).index(w) + 3 for w in words.split()]


def turn(role: str, words: str) -> list[int]:
    return [START, *ids(role), *ids(words), END]


def conversation(*pairs: str) -> list[dict]:
    return [{"role": role, "content": content} for role, content in zip(pairs[::2], pairs[1::2])]


@pytest.fixture
def chatted(tmp_path) -> Path:
    """Conversations per split: a single turn, a multi-turn one with a system message, and a blank answer."""
    train = [conversation("user", "a b", "assistant", "e"),
             conversation("system", "c", "user", "a", "assistant", "b", "user", "d", "assistant", "e c"),
             conversation("user", "a", "assistant", "  ")]
    pd.DataFrame({"messages": train}).to_json(tmp_path / "train.jsonl", orient="records", lines=True)
    for split, words in (("validation", "d"), ("test", "c")):
        pd.DataFrame({"messages": [conversation("user", words, "assistant", "a")]}).to_json(
            tmp_path / f"{split}.jsonl", orient="records", lines=True)
    chat_tokenizer(tmp_path / "chat")
    return tmp_path


def test_conversations_are_written_with_the_tokenizer_s_template_and_learned_on_the_answer(chatted):
    prepared = prepare_corpus(chatted, source="files", files=FILES, tokenizer="chat", max_length=32,
                              messages_column="messages", chat_template="tokenizer")
    meta = prepared.meta
    assert prepared.has_prompts and meta["messages_column"] == "messages" and meta["chat_template"] == TEMPLATE
    assert meta["end_of_turn"] == "<|im_end|>" and meta["empty_rows"]["train"] == 1  # the blank answer
    generation = [START, *ids("assistant")]
    first = turn("user", "a b") + generation
    many = turn("system", "c") + turn("user", "a") + turn("assistant", "b") + turn("user", "d") + generation
    # the response: the answer and the template's end of turn, which is the eos: none appended, the space after it
    # (the template's) is not kept
    assert rows(prepared.splits["train"]) == [first + ids("e") + [END], many + ids("e c") + [END]]
    assert prompt_lengths(prepared.splits["train"]).tolist() == [len(first), len(many)] == [7, 18]
    assert meta["target_tokens"]["train"] == 2 + 3
    assert load_tokenizer(chatted / "prepared").chat_template == TEMPLATE  # the prepared tokenizer keeps it


def test_a_prompt_column_becomes_the_user_s_message(tmp_path):
    pd.DataFrame({"q": ["a b", "c"], "text": ["e", "d e"]}).to_json(tmp_path / "train.jsonl", orient="records",
                                                                    lines=True)
    for split in ("validation", "test"):
        pd.DataFrame({"q": ["a"], "text": ["b"]}).to_json(tmp_path / f"{split}.jsonl", orient="records", lines=True)
    chat_tokenizer(tmp_path / "chat")
    prepared = prepare_corpus(tmp_path, source="files", files=FILES, tokenizer="chat", max_length=16,
                              prompt_column="q", chat_template="tokenizer")
    generation = [START, *ids("assistant")]
    assert rows(prepared.splits["train"]) == [turn("user", "a b") + generation + ids("e") + [END],
                                              turn("user", "c") + generation + ids("d e") + [END]]


def test_a_template_of_its_own_on_the_trained_bpe_decodes_back_to_the_chat(tmp_path):
    """The BPE's eos is <|endoftext|>: the template's <|im_end|> is text, and the eos is appended after it."""
    train = [conversation("user", f"review {i}: {'good' if i % 2 else 'bad'} film", "assistant",
                          "positive" if i % 2 else "negative") for i in range(20)]
    pd.DataFrame({"messages": train}).to_json(tmp_path / "train.jsonl", orient="records", lines=True)
    for split in ("validation", "test"):
        pd.DataFrame({"messages": train[:2]}).to_json(tmp_path / f"{split}.jsonl", orient="records", lines=True)
    prepared = prepare_corpus(tmp_path, source="files", files=FILES, tokenizer=None, vocab_size=300, max_length=128,
                              messages_column="messages", chat_template=CHATML)
    tokenizer = load_tokenizer(tmp_path / "prepared")
    assert prepared.meta["end_of_turn"] == "<|im_end|>"
    for row, length, messages in zip(rows(prepared.splits["train"]), prompt_lengths(prepared.splits["train"]), train):
        assert tokenizer.decode(row[:length]) == f"<|im_start|>user\n{messages[0]['content']}<|im_end|>\n" \
                                                 "<|im_start|>assistant\n"
        assert tokenizer.decode(row[length:-1]) == f"{messages[1]['content']}<|im_end|>\n"
        assert row[-1] == tokenizer.eos_token_id and tokenizer.eos_token_id not in row[:-1]


def test_conversations_in_a_csv_are_json_text(chatted):
    import json

    for split, words in (("train", "a b"), ("validation", "d"), ("test", "c")):
        cells = [json.dumps(conversation("user", words, "assistant", "e")), ""]
        pd.DataFrame({"messages": cells}).to_csv(chatted / f"{split}.csv", index=False)
    prepared = prepare_corpus(chatted, source="files", files={k: v.replace(".jsonl", ".csv") for k, v in FILES.items()},
                              tokenizer="chat", max_length=16, messages_column="messages", chat_template="tokenizer")
    assert prepared.meta["empty_rows"] == {"train": 1, "validation": 1, "test": 1}
    assert rows(prepared.splits["train"]) == [turn("user", "a b") + [START, *ids("assistant")] + ids("e") + [END]]


@pytest.mark.parametrize("bad, message", [
    ([{"role": "user", "content": "a"}, {"role": "user", "content": "b"}],
     r"1 rows do not end with the assistant's message \(the response\) \(ids \[1\]\)"),
    ([{"role": "assistant", "content": "a"}], r"1 rows have no message before the response \(the prompt\)"),
    ([{"role": "user", "text": "a"}, {"role": "assistant", "content": "b"}],
     r"1 rows are not lists of {role, content} messages with text in both \(ids \[1\]\)"),
    ("not a conversation", r"1 rows are not lists of {role, content} messages with text in both \(ids \[1\]\)"),
    (7, r"1 rows are not lists of {role, content} messages with text in both \(ids \[1\]\)"),
])
def test_a_bad_conversation_is_named_with_its_row_id(chatted, bad, message):
    good = conversation("user", "a", "assistant", "b")
    pd.DataFrame({"messages": [good, bad, good]}).to_json(chatted / "train.jsonl", orient="records", lines=True)
    with pytest.raises(DistilleryError, match=r"column 'messages' \(data.messages_column\): " + message):
        prepare_corpus(chatted, source="files", files=FILES, tokenizer="chat", max_length=16,
                       messages_column="messages", chat_template="tokenizer")


def test_a_tokenizer_without_a_template_and_a_template_that_fails_are_named(chatted):
    chat_tokenizer(chatted / "plain", template=None)
    with pytest.raises(DistilleryError, match="the tokenizer of data.tokenizer = .*plain.* has no chat template"):
        prepare_corpus(chatted, source="files", files=FILES, tokenizer="plain", max_length=32,
                       messages_column="messages", chat_template="tokenizer")
    refusing = "{% if messages[0]['role'] == 'system' %}{{ raise_exception('no system messages') }}{% endif %}x"
    with pytest.raises(DistilleryError, match="data.chat_template cannot render row 1: .*no system messages"):
        prepare_corpus(chatted, source="files", files=FILES, tokenizer="chat", max_length=32,
                       messages_column="messages", chat_template=refusing)


def test_blank_conversations_and_the_end_at_the_eos():
    cells = pd.Series([None, [], "", conversation("user", "a", "assistant", " "), conversation("user", "a"),
                       "[]", 7, '[{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}]'],
                      dtype=object)
    assert chats.blank_conversations(cells).tolist() == [True, True, True, True, False, True, False, False]
    values, lengths = chats.end_at_eos(np.array([5, 1, 6, 7, 8, 1], np.int32), np.array([3, 2, 1]), eos=1)
    assert values.tolist() == [5, 1, 7, 8, 1, 1] and lengths.tolist() == [2, 3, 1]
    assert chats.cut_at_end_of_turn("yes<|im_end|>\nmore", "<|im_end|>") == "yes"
    assert chats.cut_at_end_of_turn("yes", "") == "yes"


SMOLLM2 = ("{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}"
           "{{ '<|im_start|>system\\nYou are a helpful AI assistant<|im_end|>\\n' }}{% endif %}"
           "{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}{% endfor %}"
           "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}")
LLAMA3 = ("{{ bos_token }}{% for m in messages %}<|start_header_id|>{{ m['role'] }}<|end_header_id|>\n\n"
          "{{ m['content'] | trim }}<|eot_id|>{% endfor %}"
          "{% if add_generation_prompt %}<|start_header_id|>assistant<|end_header_id|>\n\n{% endif %}")
ZEPHYR = ("{% for m in messages %}<|{{ m['role'] }}|>\n{{ m['content'] }}{{ eos_token }}\n{% endfor %}"
          "{% if add_generation_prompt %}<|assistant|>\n{% endif %}")


@pytest.mark.parametrize("template, prompt", [
    (SMOLLM2, "<|im_start|>system\nYou are a helpful AI assistant<|im_end|>\n<|im_start|>user\nhi there<|im_end|>\n"
              "<|im_start|>assistant\n"),
    (LLAMA3, "<|endoftext|><|start_header_id|>user<|end_header_id|>\n\nhi there<|eot_id|>"
             "<|start_header_id|>assistant<|end_header_id|>\n\n"),
    (ZEPHYR, "<|user|>\nhi there<|endoftext|>\n<|assistant|>\n"),
])
def test_templates_of_real_chat_models_split_into_prompt_and_answer(tmp_path, template, prompt):
    """SmolLM2's (a default system message), Llama 3's (the bos token, trimmed text) and Zephyr's (the eos token as
    the end of turn: the answer ends there) on the BPE trained here."""
    train = [conversation("user", "hi there", "assistant", f"hello {i} ") for i in range(10)]
    for split in ("train", "validation", "test"):
        pd.DataFrame({"messages": train}).to_json(tmp_path / f"{split}.jsonl", orient="records", lines=True)
    prepared = prepare_corpus(tmp_path, source="files", files=FILES, tokenizer=None, vocab_size=300, max_length=128,
                              messages_column="messages", chat_template=template)
    tokenizer = load_tokenizer(tmp_path / "prepared")
    row, length = rows(prepared.splits["test"])[0], prompt_lengths(prepared.splits["test"])[0]
    assert tokenizer.decode(row[:length]) == prompt
    answer = "hello 0" if template == LLAMA3 else "hello 0 "  # Llama 3 trims the message
    assert tokenizer.decode(row[length:]) == {SMOLLM2: f"{answer}<|im_end|>\n<|endoftext|>",
                                              LLAMA3: f"{answer}<|eot_id|><|endoftext|>",
                                              ZEPHYR: f"{answer}<|endoftext|>"}[template]
    assert prepared.meta["end_of_turn"] == {SMOLLM2: "<|im_end|>", LLAMA3: "<|eot_id|>",
                                            ZEPHYR: "<|endoftext|>"}[template]


def test_every_assistant_message_can_be_a_response_of_its_own(chatted):
    """data.chat_turns: every: the multi-turn conversation (id 1) gives two rows, ids 1000 and 1001, each prompted
    by every message before its answer."""
    prepared = prepare_corpus(chatted, source="files", files=FILES, tokenizer="chat", max_length=32,
                              messages_column="messages", chat_template="tokenizer", chat_turns="every")
    generation = [START, *ids("assistant")]
    first = turn("user", "a b") + generation
    opening = turn("system", "c") + turn("user", "a") + generation
    whole = turn("system", "c") + turn("user", "a") + turn("assistant", "b") + turn("user", "d") + generation
    train = prepared.splits["train"]
    assert train.ids.tolist() == [0, 1000, 1001] and prepared.meta["chat_turns"] == "every"
    assert rows(train) == [first + ids("e") + [END], opening + ids("b") + [END], whole + ids("e c") + [END]]
    assert prompt_lengths(train).tolist() == [7, 10, 18]
    assert prepared.splits["test"].ids.tolist() == [4000]  # the files are numbered on: train 0-2, validation 3


def test_every_turn_skips_an_opening_or_blank_answer_and_refuses_ids_it_cannot_number():
    greeting = conversation("assistant", "hi", "user", "a", "assistant", " ", "user", "b", "assistant", "c")
    row_ids, prompts, responses = chats.conversations(pd.Series([greeting]), np.array([4]), "m", "here", "every")
    assert row_ids.tolist() == [4002] and responses == ["c"] and len(prompts[0]) == 4  # the third answer, number 2
    with pytest.raises(DistilleryError, match=r"1 rows have an id beyond .* \(ids \[10000000000000000\]\)"):
        chats.conversations(pd.Series([greeting]), np.array([10**16]), "m", "here", "every")
    assert chats.conversations(pd.Series([greeting]), np.array([10**16]), "m", "here")[0].tolist() == [10**16]
