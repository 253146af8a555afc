import pytest
import torch

from distillery.models import build_model, count_parameters, load_model

LABELS = [str(i) for i in range(10)]


@pytest.mark.parametrize(
    "spec, params",
    [
        ({"arch": "mlp", "hidden_sizes": [16], "dropout": 0.0}, 64 * 16 + 16 + 16 * 10 + 10),
        ({"arch": "mlp", "hidden_sizes": [256, 256]}, 64 * 256 + 256 + 256 * 256 + 256 + 256 * 10 + 10),
        # conv 1->4 (3x3): 40; 8x8 -> 4x4 after pool; dense 4*4*4=64 -> 8: 520; 8 -> 10: 90
        ({"arch": "cnn", "channels": [4], "hidden_size": 8}, 40 + 520 + 90),
    ],
)
def test_build_save_load_round_trip(tmp_path, spec, params):
    model = build_model(spec, [8, 8], LABELS).eval()
    assert count_parameters(model) == params
    x = torch.rand(5, 8, 8)
    expected = model(features=x).logits
    assert expected.shape == (5, 10)
    model.save_pretrained(tmp_path)
    assert (tmp_path / "model.safetensors").exists()
    assert not list(tmp_path.glob("*.bin"))
    loaded = load_model(tmp_path)
    assert type(loaded) is type(model)
    assert loaded.config.id2label[3] == "3"
    torch.testing.assert_close(loaded(features=x).logits, expected, rtol=0, atol=0)


def test_labels_give_cross_entropy_loss():
    model = build_model({"arch": "mlp", "hidden_sizes": [4]}, [64], LABELS)
    x, y = torch.rand(3, 64), torch.tensor([1, 2, 3])
    out = model(features=x, labels=y)
    torch.testing.assert_close(out.loss, torch.nn.functional.cross_entropy(out.logits, y))


def test_same_seed_same_init():
    from transformers import set_seed

    set_seed(7)
    a = build_model({"arch": "mlp", "hidden_sizes": [16]}, [64], LABELS)
    set_seed(7)
    b = build_model({"arch": "mlp", "hidden_sizes": [16]}, [64], LABELS)
    for (ka, va), (kb, vb) in zip(a.state_dict().items(), b.state_dict().items()):
        assert torch.equal(va, vb), ka
