"""End to end for conversations (``data.messages_column`` with a ``data.chat_template`` of its own and
``data.chat_turns: every``): `dvc repro` writes each conversation in the template, learns and scores every answer of
the assistant and its end of turn (rows keyed by conversation and turn), and scores the models' answers against the
references with the end of turn cut from both."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from ..repo_utils import copy_repo, reproduced
from ..text_utils import sentences
from .test_lm_pipeline import lm_params

pytestmark = pytest.mark.slow  # end to end: dvc repro / subprocesses (make test-fast skips it)

TEMPLATE = ("{% for m in messages %}<{{ m['role'][0] }}>{{ m['content'] }}</s>{% endfor %}"
            "{% if add_generation_prompt %}<a>{% endif %}")


def conversations(n: int) -> pd.DataFrame:
    """A review and its sentiment's word as a chat; every third one opens with a system message, every fourth asks
    again (a second answer)."""
    rows = sentences(n)
    out = []
    for i, (sentence, label) in enumerate(zip(rows["sentence"], rows["label"])):
        system = [{"role": "system", "content": "rate it"}] if i % 3 == 0 else []
        answer = "good" if label == 1 else "bad"
        again = [{"role": "user", "content": "sure?"}, {"role": "assistant", "content": f"yes, {answer}"}] \
            if i % 4 == 0 else []
        out.append(system + [{"role": "user", "content": sentence}, {"role": "assistant", "content": answer}] + again)
    return pd.DataFrame({"messages": out})


def turn_of(source: pd.DataFrame, row_id: int) -> tuple[list[dict], str]:
    """The prompt's messages and the answer of a row (id: conversation × 1000 + the assistant message's number)."""
    messages = list(source.loc[row_id // 1000, "messages"])
    j = [k for k, m in enumerate(messages) if m["role"] == "assistant"][row_id % 1000]
    return messages[:j], messages[j]["content"]


def rendered(messages: list[dict], generation_prompt: bool) -> str:
    text = "".join(f"<{m['role'][0]}>{m['content']}</s>" for m in messages)
    return text + ("<a>" if generation_prompt else "")


@pytest.fixture(scope="module")
def repo(tmp_path_factory):
    assets = tmp_path_factory.mktemp("assets")
    corpus = assets / "chats.jsonl"
    conversations(200).to_json(corpus, orient="records", lines=True)
    params = lm_params(corpus)
    params["data"].update({"messages_column": "messages", "chat_template": TEMPLATE, "chat_turns": "every",
                           "max_length": 96})
    params["evaluate"]["responses"] = 20
    return reproduced(copy_repo(tmp_path_factory.mktemp("lm_chat_repo"), params))


def test_each_conversation_is_written_in_the_template_and_its_answers_scored_without_the_end_of_turn(repo):
    import datasets
    from transformers import PreTrainedTokenizerFast

    meta = json.loads((repo / "data/prepared/meta.json").read_text())
    assert meta["messages_column"] == "messages" and meta["chat_template"] == TEMPLATE
    assert meta["end_of_turn"] == "</s>"
    tokenizer = PreTrainedTokenizerFast.from_pretrained(str(repo / "data/prepared/tokenizer"))
    assert tokenizer.chat_template == TEMPLATE
    for model in ("models/teacher", "models/students/kd/seed_0", "models/students/hard/seed_1"):  # ready to chat
        assert PreTrainedTokenizerFast.from_pretrained(str(repo / model)).chat_template == TEMPLATE
    source = conversations(200)
    rows = datasets.load_from_disk(str(repo / "data/prepared"))["test"].to_pandas()
    assert rows["id"].is_monotonic_increasing and (rows["id"] % 1000 == 1).any()  # second answers are rows too
    for _, row in rows.iterrows():
        tokens, (prompt, answer) = list(row["input_ids"]), turn_of(source, row["id"])
        assert tokenizer.decode(tokens[:row["prompt_length"]]) == rendered(prompt, True)
        assert tokenizer.decode(tokens[row["prompt_length"]:]) == answer + "</s><|endoftext|>"
    metrics = json.loads((repo / "reports/metrics.json").read_text())
    assert metrics["teacher"]["tokens"] == meta["target_tokens"]["test"]
    for name in ("teacher", "kd", "hard"):
        assert 0 <= metrics[name]["rouge_l"] <= 1 and 0 <= metrics[name]["exact_match"] <= 1
    continuations = json.loads((repo / "reports/eval/continuations.json").read_text())
    validation = datasets.load_from_disk(str(repo / "data/prepared"))["validation"].to_pandas()
    for entry, row_id in zip(continuations, validation["id"]):
        prompt, answer = turn_of(source, row_id)
        assert entry["reference"] == answer and entry["prompt"] == rendered(prompt, True)  # "</s>" cut
        assert all("</s>" not in entry[name] for name in entry if name not in ("prompt", "reference"))
    assert np.isfinite(metrics["comparison"]["kd_minus_hard_rouge_l"])
    report = (repo / "reports/report.md").read_text()
    assert "the conversations of column `messages` (every assistant message a response), written with a chat " \
           "template, its end of turn `</s>` cut from the answers scored" in report


def test_predict_answers_conversations_in_the_template_as_evaluate_did(repo, tmp_path):
    """The teacher from its folder alone answers the first validation turns, given as conversations ending with the
    answer (the reference) or with the user's message, in the template and cut at its end of turn, as the report's
    continuations show them."""
    import datasets

    from ..repo_utils import run

    validation = datasets.load_from_disk(str(repo / "data/prepared"))["validation"].to_pandas()
    shown = json.loads((repo / "reports/eval/continuations.json").read_text())
    turns = [turn_of(conversations(200), row_id) for row_id in validation["id"][:len(shown)]]
    chats = [prompt + ([{"role": "assistant", "content": answer}] if i % 2 else []) for i, (prompt, answer)
             in enumerate(turns)]
    pd.DataFrame({"id": validation["id"][:len(shown)], "messages": chats}).to_json(
        tmp_path / "chats.jsonl", orient="records", lines=True)
    run(["python", "-m", "distillery.predict", "models/teacher", str(tmp_path / "chats.jsonl"),
         str(tmp_path / "answers.csv"), "--batch-size", str(len(shown))], repo)
    out = pd.read_csv(tmp_path / "answers.csv", keep_default_na=False)
    assert out["answer"].tolist() == [entry["teacher"] for entry in shown]
    assert "</s>" not in "".join(out["answer"])
    assert out["reference"].tolist() == ["" if i % 2 == 0 else answer for i, (_, answer) in enumerate(turns)]
