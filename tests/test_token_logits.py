"""Per-token teacher logits: compression on the teacher's device, the file keyed by (id, position), the join to a
prepared split, a batch's targets (dense (B, L, V), or the top-k parts the training device makes dense), and
the refusals."""
import numpy as np
import pyarrow.parquet as pq
import pytest
import torch

from distillery import token_logits
from distillery.errors import DistilleryError
from distillery.logits_top_k import compress, rebuild
from distillery.token_logits import (check_token_top_k, compress_tokens, load_token_logits, token_logits_writer,
                                     write_token_logits)

V = 8
IDS = np.array([10, 3, 7, 42])      # the split's rows, in the prepared order
LENGTHS = np.array([5, 1, 3, 4])    # tokens per sequence: 4, 0, 2 and 3 next-token targets


def tokens(ids=IDS, lengths=LENGTHS):
    """Every (id, position) key of the split, and one row of random logits (with ties) per key."""
    key_ids = np.repeat(ids, np.maximum(lengths - 1, 0))
    key_positions = np.concatenate([np.arange(max(n - 1, 0)) for n in lengths])
    rng = np.random.default_rng(0)
    z = rng.normal(size=(len(key_ids), V)).astype(np.float32)
    z[::2, :4] = np.round(z[::2, :4])  # ties, some of them at the k-th largest logit
    return key_ids, key_positions, z


def write_shuffled(path, k, vocab_size=V):
    """The split's tokens written in a shuffled order; returns the keys and logits as generated."""
    key_ids, key_positions, z = tokens()
    order = np.random.default_rng(1).permutation(len(key_ids))
    parts = compress_tokens(torch.from_numpy(z[order]), k)
    stored = write_token_logits(path, key_ids[order], key_positions[order], parts,
                                vocab_size=vocab_size if k is not None else None)
    return stored, key_ids, key_positions, z


def expected_batch(rows, length, key_ids, key_positions, values):
    out = np.zeros((len(rows), length, V), np.float32)
    for b, r in enumerate(rows):
        for p in range(LENGTHS[r] - 1):
            out[b, p] = values[(key_ids == IDS[r]) & (key_positions == p)][0]
    return out


@pytest.mark.parametrize("k", [1, 2, 3, V - 1])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float64])
def test_compress_tokens_equals_compress_per_row(k, dtype, monkeypatch):
    monkeypatch.setattr(token_logits, "CHUNK_ELEMENTS", 3 * V)  # several chunks of 3 tokens
    rng = np.random.default_rng(k)
    z = torch.from_numpy(rng.normal(size=(40, V)) * 3).to(dtype)
    z[::3] = torch.round(z[::3])  # many ties, across the k-th largest logit too
    z[5] = 1.0                     # a row that is all one tie
    got = compress_tokens(z, k)
    want = compress(z.to(torch.float64).numpy(), k)
    assert got.keys() == want.keys()
    for name in want:
        assert got[name].dtype == want[name].dtype and got[name].shape == want[name].shape
        np.testing.assert_array_equal(got[name], want[name], err_msg=name)
    np.testing.assert_array_equal(got["index"][5], np.arange(k))  # ties: lower id first


def test_compress_tokens_without_k_keeps_every_logit_as_float32():
    z = torch.randn(6, V, dtype=torch.float64)
    got = compress_tokens(z, None)
    assert set(got) == {"logits"} and got["logits"].dtype == np.float32
    np.testing.assert_array_equal(got["logits"], z.numpy().astype(np.float32))
    assert compress_tokens(torch.zeros(0, V), 3)["index"].shape == (0, 3)


def test_hand_computed_token(tmp_path):
    """Logits (0, 3, 1, 3), k = 2: the tie at 3 keeps tokens 1 and 3; the rest, tokens 0 and 2 (logits 0 and 1),
    has μ = 0.5 and ℓ = log(1 + e)."""
    parts = compress_tokens(torch.tensor([[0.0, 3.0, 1.0, 3.0]]), 2)
    np.testing.assert_array_equal(parts["index"], [[1, 3]])
    np.testing.assert_array_equal(parts["top"], [[3.0, 3.0]])
    np.testing.assert_allclose(parts["rest_mean"], [0.5])
    np.testing.assert_allclose(parts["rest_lse"], [1.3132616875182228], rtol=1e-7)
    path = tmp_path / "train.parquet"
    write_token_logits(path, np.array([5]), np.array([0]), parts, vocab_size=4)
    stored = load_token_logits(path, np.array([5]), np.array([2]), 4)
    # T = 1: r = ℓ − log 2; T = 4: r = μ + (ℓ − log 2 − μ)/4 = 0.5 + 0.1201145069582775/4
    for T, r in [(1.0, 0.6201145069582775), (4.0, 0.5300286267395694)]:
        dense = token_logits.dense_targets(stored.batch([0], 3, T), 4)
        np.testing.assert_allclose(dense.numpy(), [[[r, 3, r, 3], [0, 0, 0, 0], [0, 0, 0, 0]]], rtol=1e-6)


def test_full_logits_round_trip_is_exact_in_any_row_order(tmp_path):
    path = tmp_path / "train.parquet"
    stored, key_ids, key_positions, z = write_shuffled(path, None)
    assert (stored.top_k, stored.vocab_size, stored.num_tokens) == (None, V, 9)
    table = pq.read_table(path)
    assert table.column_names == ["id", "position", "logits"]
    assert str(table.schema.field("id").type) == "int64" and str(table.schema.field("position").type) == "int32"
    file_keys = list(zip(table.column("id").to_pylist(), table.column("position").to_pylist()))
    assert file_keys == sorted(file_keys)

    data = load_token_logits(path, IDS, LENGTHS, V)
    assert (data.top_k, data.num_tokens, data.bytes_per_token, data.key_bytes) == (None, 9, 4 * V, 12)
    rows = [3, 0, 1, 2]
    batch = data.batch(rows, 6, T=4.0)  # T does not change stored logits
    assert batch.dtype == torch.float32 and batch.shape == (4, 6, V)
    np.testing.assert_array_equal(batch.numpy(), expected_batch(rows, 6, key_ids, key_positions, z))
    assert not batch[2].any()  # row 1 has one token: no target, all padding


@pytest.mark.parametrize("T", [1.0, 4.0])
def test_top_k_round_trip_equals_rebuild_of_the_same_tokens(tmp_path, T):
    path = tmp_path / "train.parquet"
    stored, key_ids, key_positions, z = write_shuffled(path, 3)
    assert (stored.top_k, stored.bytes_per_token, stored.key_bytes) == (3, 8 * 3 + 8, 12)
    assert pq.read_table(path).column_names == ["id", "position", "index", "top", "rest_mean", "rest_lse"]
    kept = compress(z, 3)
    want = rebuild(kept["index"], kept["top"], kept["rest_mean"], kept["rest_lse"], V, T)

    reordered = [2, 3, 0, 1]  # the split loaded in another order than written
    data = load_token_logits(path, IDS[reordered], LENGTHS[reordered], V)
    assert (data.top_k, data.num_tokens, data.bytes_per_token) == (3, 9, 32)
    parts = data.batch([2, 0, 1], 5, T)  # rows of the reordered split: ids 10, 7, 42
    assert {name: (part.dtype, tuple(part.shape)) for name, part in parts.items()} == {
        "index": (torch.int64, (3, 5, 3)), "top": (torch.float32, (3, 5, 3)), "rest": (torch.float32, (3, 5))}
    batch = token_logits.dense_targets(parts, V)  # what the training device rebuilds: rebuild's, bit for bit
    np.testing.assert_array_equal(batch.numpy(), expected_batch([0, 2, 3], 5, key_ids, key_positions, want))
    assert not batch[0, 4:].any() and not batch[1, 2:].any() and not batch[2, 3:].any()
    assert token_logits.dense_targets(data.batch([], 5, T), V).shape == (0, 5, V)
    rows = torch.tensor([[True] * 4 + [False], [True, True, False, False, False], [True] * 3 + [False] * 2])
    flat = token_logits.dense_targets({name: part[rows] for name, part in parts.items()}, V)  # the tokens alone
    torch.testing.assert_close(flat, batch[rows], rtol=0, atol=0)


@pytest.mark.parametrize("k", [None, 3])
def test_batches_written_in_any_order_load_as_one_write_does(tmp_path, monkeypatch, k):
    """The stages' streamed file: batches of whole rows in their own order (as the teacher scores them, by length),
    small row groups; read back a few rows at a time, it gives what one sorted write gives."""
    key_ids, key_positions, z = tokens()
    parts = compress_tokens(torch.from_numpy(z), k)
    write_token_logits(tmp_path / "one.parquet", key_ids, key_positions, parts, vocab_size=V)
    monkeypatch.setattr(token_logits.TokenLogitsWriter, "ROW_GROUP_BYTES", 1)  # a row group per batch
    monkeypatch.setattr(token_logits, "READ_BYTES", 3 * token_logits.payload_bytes(k, V))  # 3 tokens a read
    with token_logits_writer(tmp_path / "streamed.parquet", V, k) as writer:
        for row_id in (42, 10, 7):  # id 3 has no targets
            mine = np.flatnonzero(key_ids == row_id)[::-1]  # a batch's tokens in any order
            writer.write(key_ids[mine], key_positions[mine], {name: v[mine] for name, v in parts.items()})
    assert writer.stored.num_tokens == 9 and pq.ParquetFile(tmp_path / "streamed.parquet").num_row_groups == 3
    one, streamed = (load_token_logits(tmp_path / f"{name}.parquet", IDS, LENGTHS, V) for name in ("one", "streamed"))
    for name in parts:
        np.testing.assert_array_equal(streamed.parts[name], one.parts[name], err_msg=name)


def test_the_writer_leaves_no_file_on_repeated_keys_across_batches_or_another_k(tmp_path):
    parts = compress_tokens(torch.randn(2, V), 2)
    with pytest.raises(DistilleryError, match=r"t.parquet: 1 repeated \(id, position\) keys, e.g. \[\(7, 1\)\]"):
        with token_logits_writer(tmp_path / "t.parquet", V, 2) as writer:
            writer.write(np.array([7, 7]), np.array([0, 1]), parts)
            writer.write(np.array([8, 7]), np.array([0, 1]), parts)
    with pytest.raises(ValueError, match="top k 2 in a file of top k 3"):
        with token_logits_writer(tmp_path / "t.parquet", V, 3) as writer:
            writer.write(np.array([7, 7]), np.array([0, 1]), parts)
    assert not list(tmp_path.iterdir())


def test_stored_bytes_per_token(tmp_path):
    k, n = 4, 4000
    ids, positions = np.repeat(np.arange(n // 100), 100), np.tile(np.arange(100), n // 100)
    z = torch.randn(n, 64) * 3
    stored = write_token_logits(tmp_path / "t.parquet", ids, positions, compress_tokens(z, k), vocab_size=64)
    assert stored.bytes_per_token == 8 * k + 8
    assert (tmp_path / "t.parquet").stat().st_size / n <= 8 * k + 16  # the key and the file's overhead included


def test_refuses_a_top_k_outside_the_vocabulary():
    for k in (0, V):
        with pytest.raises(DistilleryError, match=rf"teacher.logits_top_k = {k}: must be between 1 and {V - 1} "
                                                  rf"\(the teacher's vocabulary has {V} tokens"):
            compress_tokens(torch.zeros(2, V), k)
    check_token_top_k(None, V)
    with pytest.raises(DistilleryError, match=r"teachers.wide.logits_top_k = 9: must be between 1 and 7"):
        check_token_top_k(9, V, "teachers.wide.logits_top_k")


def test_refuses_nan_logits_when_compressing():
    z = torch.zeros(4, V)
    z[2, 1] = float("nan")
    with pytest.raises(DistilleryError, match=r"NaN/inf at tokens \[2\] of a batch of 4"):
        compress_tokens(z, 2)


def test_write_refuses_repeated_keys(tmp_path):
    parts = compress_tokens(torch.randn(3, V), 2)
    with pytest.raises(DistilleryError, match=r"1 repeated \(id, position\) keys, e.g. \[\(7, 1\)\]"):
        write_token_logits(tmp_path / "t.parquet", np.array([7, 7, 7]), np.array([1, 0, 1]), parts, vocab_size=V)
    assert not list(tmp_path.iterdir())
    with pytest.raises(ValueError, match="need vocab_size"):
        write_token_logits(tmp_path / "t.parquet", np.array([1, 2, 3]), np.zeros(3), parts)


def test_load_refuses_a_missing_file(tmp_path):
    with pytest.raises(DistilleryError, match=r"missing.parquet: token logits file not found \(run the "
                                              r"teacher_logits stage\)"):
        load_token_logits(tmp_path / "missing.parquet", IDS, LENGTHS, V)


def test_load_refuses_missing_keys(tmp_path):
    path = tmp_path / "train.parquet"
    write_shuffled(path, 3)
    lengths = LENGTHS.copy()
    lengths[0] = 7  # id 10 now has targets at positions 4 and 5 that the file lacks
    with pytest.raises(DistilleryError, match=r"train.parquet: \(id, position\) keys do not match the prepared "
                                              r"split .*: 2 missing \(e.g. \[\(10, 4\), \(10, 5\)\]\), 0 extra"):
        load_token_logits(path, IDS, lengths, V)
    with pytest.raises(DistilleryError, match=r"1 missing \(e.g. \[\(99, 0\)\]\), 0 extra"):
        load_token_logits(path, np.append(IDS, 99), np.append(LENGTHS, 2), V)


def test_load_refuses_extra_keys(tmp_path):
    path = tmp_path / "train.parquet"
    write_shuffled(path, None)
    with pytest.raises(DistilleryError, match=r"0 missing \(e.g. \[\]\), 3 extra \(e.g. \[\(42, 0\), \(42, 1\), "
                                              r"\(42, 2\)\]\)"):
        load_token_logits(path, IDS[:3], LENGTHS[:3], V)  # id 42 is not in the split
    lengths = LENGTHS.copy()
    lengths[3] = 3  # position 2 of id 42 is now its last token: it predicts nothing
    with pytest.raises(DistilleryError, match=r"0 missing \(e.g. \[\]\), 1 extra \(e.g. \[\(42, 2\)\]\)"):
        load_token_logits(path, IDS, lengths, V)


def test_load_refuses_another_vocabulary(tmp_path):
    full, top = tmp_path / "full.parquet", tmp_path / "top.parquet"
    write_shuffled(full, None)
    write_shuffled(top, 3)
    for path in (full, top):
        with pytest.raises(DistilleryError, match=rf"{path.name}: .*another vocabulary \(teacher vocabulary {V}, "
                                                  rf"data {V + 1}\)"):
            load_token_logits(path, IDS, LENGTHS, V + 1)


def test_load_refuses_a_token_id_outside_the_vocabulary(tmp_path):
    path = tmp_path / "train.parquet"
    key_ids, key_positions, z = tokens()
    parts = compress_tokens(torch.from_numpy(z), 2)
    parts["index"][4, 1] = V  # a corrupt file: its metadata says V, a token id says more
    write_token_logits(path, key_ids, key_positions, parts, vocab_size=V)
    with pytest.raises(DistilleryError, match=rf"top-k token ids \[{V}\] outside the vocabulary \(teacher vocabulary "
                                              rf"{V}, data {V}\) at keys \[\(7, 0\)\]"):
        load_token_logits(path, IDS, LENGTHS, V)


def test_load_refuses_nan_logits(tmp_path):
    path = tmp_path / "train.parquet"
    key_ids, key_positions, z = tokens()
    parts = compress_tokens(torch.from_numpy(z), 2)
    parts["rest_lse"][6] = np.inf
    write_token_logits(path, key_ids, key_positions, parts, vocab_size=V)
    with pytest.raises(DistilleryError, match=r"NaN/inf logits at keys \[\(42, 0\)\]"):
        load_token_logits(path, IDS, LENGTHS, V)


@pytest.mark.parametrize("k", [None, 3])
def test_prompted_rows_hold_their_response_positions_only_and_batch_them_in_place(tmp_path, k):
    """Targets from each row's prompt's last token on (starts 2, 0, 1, 0): the file holds those keys alone, a batch
    puts them at their positions (zeros elsewhere), and a concatenation keeps each part's starts."""
    from distillery.token_logits import concat_token_logits, dense_targets

    starts = np.array([2, 0, 1, 0])
    key_ids, key_positions, z = tokens()
    keep = key_positions >= np.repeat(starts, np.maximum(LENGTHS - 1, 0))
    write_token_logits(tmp_path / "t.parquet", key_ids[keep], key_positions[keep],
                       compress_tokens(torch.from_numpy(z[keep]), k), vocab_size=V if k else None)
    stored = load_token_logits(tmp_path / "t.parquet", IDS, LENGTHS, V, starts)
    assert stored.num_tokens == 2 + 0 + 1 + 3
    batch = stored.batch([0, 2, 3], 6, T=2.0)
    dense = (dense_targets(batch, V) if k else batch).numpy()
    expected = np.zeros((3, 6, V), np.float32)
    for b, row in enumerate([0, 2, 3]):
        for position in range(starts[row], LENGTHS[row] - 1):
            target = z[(key_ids == IDS[row]) & (key_positions == position)]
            if k is None:
                expected[b, position] = target[0]
            else:
                kept = compress(target, k)
                expected[b, position] = rebuild(kept["index"], kept["top"], kept["rest_mean"], kept["rest_lse"], V,
                                                2.0)[0]
    np.testing.assert_allclose(dense, expected, rtol=1e-6, atol=1e-6)
    both = concat_token_logits(stored, stored)
    assert both.starts.tolist() == starts.tolist() * 2
    np.testing.assert_array_equal(both.batch([4], 6, T=2.0)["top"] if k else both.batch([4], 6),
                                  stored.batch([0], 6, T=2.0)["top"] if k else stored.batch([0], 6))
    write_token_logits(tmp_path / "all.parquet", key_ids, key_positions, compress_tokens(torch.from_numpy(z), k),
                       vocab_size=V if k else None)
    with pytest.raises(DistilleryError, match=r"3 extra \(e\.g\. \[\(7, 0\), \(10, 0\), \(10, 1\)\]"):  # prompts'
        load_token_logits(tmp_path / "all.parquet", IDS, LENGTHS, V, starts)
