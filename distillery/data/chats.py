"""Chats for language-model corpora (``task: causal_lm``): prompts and responses written in a chat template.

Two ways in: ``data.messages_column``, a column of conversations (lists of ``{role, content}`` messages, the chat
format of TRL and the OpenAI API), whose last message, the assistant's, is the response and the ones before it the
prompt (TRL's GKD collator splits a conversation the same way); or ``data.prompt_column`` / ``data.prompt_template``
with ``data.chat_template``, each prompt one user message. ``data.chat_template`` is ``tokenizer`` (the checkpoint
tokenizer's own template, ``data.tokenizer``) or a Jinja template of its own (as ``tokenizer.chat_template`` is
written). The tokenizer renders it (``apply_chat_template``):

- the prompt: the messages before the response with the template's generation prompt (``add_generation_prompt``);
- the response: what the whole conversation renders to after the prompt: the assistant's message and the
  template's end of its turn. Its tokens end after the first end-of-text token, which the models' generation stops
  at; where the template writes none (an end of turn that is not the tokenizer's eos), one is appended.

The text a template writes after a message (``end_of_turn``) is cut from the answers and references that
``evaluate`` scores.
"""
from __future__ import annotations

import json

import numpy as np

from ..errors import DistilleryError

FROM_TOKENIZER = "tokenizer"  # data.chat_template: the checkpoint tokenizer's own
SHOWN_IDS = 5  # row ids named in an error
TURN_STRIDE = 1000  # data.chat_turns: every: a row's id is its conversation's × this + the assistant message's number
MAX_TURN_ID = (2**63 - 1) // TURN_STRIDE - 1


def is_jinja(value: str) -> bool:
    """Whether a ``data.chat_template`` string is a template of its own (Jinja: ``{{ }}`` or ``{% %}``)."""
    return "{{" in value or "{%" in value


def blank_conversations(values) -> np.ndarray:
    """True where a conversation cell is missing, holds no message, or its last message's content is blank (a cell
    that is no conversation is not blank: ``conversations`` names it)."""
    out = np.zeros(len(values), bool)
    for i, value in enumerate(values.to_numpy(dtype=object)):
        if value is None or (isinstance(value, float) and np.isnan(value)):
            out[i] = True
            continue
        messages = as_messages(value)
        if messages is None:
            continue
        content = messages[-1].get("content") if messages and isinstance(messages[-1], dict) else None
        out[i] = not messages or (isinstance(content, str) and not content.strip())
    return out


def as_messages(value) -> list | None:
    """A conversation cell as its list of messages: a list or array (JSON Lines, Parquet, datasets) or JSON text (a
    CSV cell); None where it is none of these."""
    if isinstance(value, str):
        if not value.strip():
            return []
        try:
            value = json.loads(value)
        except ValueError:
            return None
    if isinstance(value, (list, tuple, np.ndarray)):
        return [dict(m) if hasattr(m, "keys") else m for m in value]
    return None


def conversations(values, ids: np.ndarray, column: str, where: str,
                  turns: str = "last") -> tuple[np.ndarray, list[list[dict]], list[str]]:
    """A split's conversations as rows of (id, the prompt's messages, the response's text), checked first: each
    conversation a list of ``{role, content}`` messages (text), at least one before the last, which is the
    assistant's. ``turns`` "last": one row a conversation, its id, the last message the response; "every": one row
    for each assistant message with a message before it and text in it, its prompt every message before it, its id
    the conversation's × ``TURN_STRIDE`` + the assistant message's number (0, 1, ...). A bad conversation is an
    error naming the column, the param and the row ids."""
    out_ids, prompts, responses = [], [], []
    problems: dict[str, list] = {}
    for row_id, value in zip(ids.tolist(), values.to_numpy(dtype=object)):
        messages = message_list(value)
        if messages is None:
            problems.setdefault("are not lists of {role, content} messages with text in both", []).append(row_id)
            continue
        if messages[-1]["role"] != "assistant":
            problems.setdefault("do not end with the assistant's message (the response)", []).append(row_id)
        elif len(messages) < 2:
            problems.setdefault("have no message before the response (the prompt)", []).append(row_id)
        elif turns == "last":
            out_ids.append(row_id)
            prompts.append(messages[:-1])
            responses.append(messages[-1]["content"])
        elif abs(row_id) > MAX_TURN_ID or sum(m["role"] == "assistant" for m in messages) > TURN_STRIDE:
            problems.setdefault(f"have an id beyond ±{MAX_TURN_ID:,} or more than {TURN_STRIDE:,} assistant "
                                "messages (data.chat_turns: every numbers them into the id)", []).append(row_id)
        else:
            answers = [j for j, m in enumerate(messages) if m["role"] == "assistant"]
            for number, j in enumerate(answers):
                if j > 0 and messages[j]["content"].strip():
                    out_ids.append(row_id * TURN_STRIDE + number)
                    prompts.append(messages[:j])
                    responses.append(messages[j]["content"])
    if problems:
        raise DistilleryError(f"{where}: column {column!r} (data.messages_column): " + "; ".join(
            f"{len(rows)} rows {what} (ids {rows[:SHOWN_IDS]}{' ...' if len(rows) > SHOWN_IDS else ''})"
            for what, rows in problems.items()))
    return np.asarray(out_ids, np.int64), prompts, responses


def chat_template(tokenizer, setting: str) -> str:
    """The template ``data.chat_template`` names: its own Jinja text, or the tokenizer's (refused where it has
    none)."""
    if setting != FROM_TOKENIZER:
        return setting
    if not getattr(tokenizer, "chat_template", None):
        raise DistilleryError(f"data.chat_template = {FROM_TOKENIZER!r}: the tokenizer of data.tokenizer = "
                              f"{tokenizer.name_or_path!r} has no chat template; write one in data.chat_template "
                              "(Jinja, as tokenizer.chat_template is written)")
    return tokenizer.chat_template


def render(tokenizer, template: str, prompts: list[list[dict]], responses: list[str],
           ids: np.ndarray) -> tuple[list[str], list[str]]:
    """Each row's prompt (its messages and the template's generation prompt) and response (the rest of the whole
    conversation: the assistant's message and the end of its turn) as text."""
    out_prompts, out_responses = [], []
    for row_id, messages, response in zip(ids.tolist(), prompts, responses):
        prompt, whole = render_prompt(tokenizer, template, messages, row_id), \
            _render(tokenizer, template, [*messages, {"role": "assistant", "content": response}], row_id, False)
        if not whole.startswith(prompt):
            raise DistilleryError(f"data.chat_template: row {row_id}'s conversation does not begin with its prompt "
                                  "as rendered with the generation prompt, so the response cannot be told from it "
                                  f"(prompt {prompt[-60:]!r}, conversation {whole[len(prompt) - 60:len(prompt)]!r})")
        out_prompts.append(prompt)
        out_responses.append(whole[len(prompt):])
    return out_prompts, out_responses


def message_list(value) -> list[dict] | None:
    """A conversation cell as ``{role, content}`` messages, or None where it is not a list of them with text in
    both."""
    messages = as_messages(value)
    if not messages or not all(isinstance(m, dict) and isinstance(m.get("role"), str)
                               and isinstance(m.get("content"), str) for m in messages):
        return None
    return [{"role": m["role"], "content": m["content"]} for m in messages]


def render_prompt(tokenizer, template: str, messages: list[dict], row_id) -> str:
    """A prompt's messages as text with the template's generation prompt, as ``render`` writes every prompt."""
    return _render(tokenizer, template, messages, row_id, True)


def _render(tokenizer, template: str, messages: list[dict], row_id, generation_prompt: bool) -> str:
    try:
        return tokenizer.apply_chat_template(messages, chat_template=template, tokenize=False,
                                             add_generation_prompt=generation_prompt)
    except Exception as exc:  # jinja raises its own errors (and templates raise_exception on roles they refuse)
        raise DistilleryError(f"data.chat_template cannot render row {row_id}: {type(exc).__name__}: {exc}") from None


def end_of_turn(tokenizer, template: str) -> str:
    """What the template writes after an assistant's message, stripped (``<|im_end|>`` in ChatML); empty where it
    writes nothing or the message's text does not come through as it is."""
    probe = [{"role": "user", "content": "Question?"}]
    marker = "Answer."
    prompt = _render(tokenizer, template, probe, "(probe)", True)
    whole = _render(tokenizer, template, [*probe, {"role": "assistant", "content": marker}], "(probe)", False)
    tail = whole[len(prompt):]
    return tail.split(marker, 1)[1].strip() if marker in tail else ""


def end_at_eos(values: np.ndarray, lengths: np.ndarray, eos: int) -> tuple[np.ndarray, np.ndarray]:
    """Each row's tokens (laid row after row) up to its first ``eos`` token, or followed by one where it has none."""
    rows = []
    starts = np.concatenate([[0], np.cumsum(lengths)])
    for start, stop in zip(starts[:-1], starts[1:]):
        row = values[start:stop]
        ends = np.flatnonzero(row == eos)
        rows.append(row[:ends[0] + 1] if len(ends) else np.append(row, np.asarray(eos, values.dtype)))
    new_lengths = np.fromiter(map(len, rows), np.int64, count=len(rows))
    return (np.concatenate(rows) if rows else values[:0]), new_lengths


def cut_at_end_of_turn(text: str, marker: str) -> str:
    """An answer or a reference as scored: its text before the template's end of turn (``marker``; empty: all)."""
    return text.split(marker, 1)[0] if marker else text
