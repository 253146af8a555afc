"""The one training path: TrainingArguments from params, and what the Trainer hands a method's loss."""
import torch

from distillery.methods import HARD
from distillery.models.zoo import build_model
from distillery.params import validate
from distillery.training.trainer import TensorDictDataset, train_model


def test_full_determinism_param_turns_on_deterministic_algorithms(tmp_path, monkeypatch):
    calls = []  # record the calls, leave torch's global state alone
    monkeypatch.setattr(torch, "use_deterministic_algorithms", lambda mode, **kwargs: calls.append(mode))
    data = TensorDictDataset(features=torch.rand(8, 4), labels=torch.tensor([0, 1] * 4))
    for flag in (False, True):
        params = validate({})["train"] | {"max_steps": 2, "full_determinism": flag}
        train_model(build_model({"arch": "mlp", "hidden_sizes": [2]}, [4], ["a", "b"]), data, data, params,
                    seed=0, method=HARD, checkpoint_dir=tmp_path / str(flag))
    assert calls == [True]  # only the run with full_determinism: true asked for deterministic kernels


def _tiny_run(tmp_path, name: str, steps: int = 6, **train):
    """A 4-2 MLP trained ``steps`` steps on 8 rows; returns (model, trainer args' log history). The model starts from
    the same weights in every call (torch's own seed differs from process to process, and ``train_model`` seeds only
    after the model is built), so two runs compare whatever ran before them."""
    from transformers import TrainerCallback

    class History(TrainerCallback):
        logs: list = []

        def on_log(self, args, state, control, logs=None, **kwargs):
            self.logs.append(dict(logs))

    history = History()
    history.logs = []
    data = TensorDictDataset(features=torch.rand(8, 4, generator=torch.Generator().manual_seed(0)),
                             labels=torch.tensor([0, 1] * 4))
    params = validate({})["train"] | {"max_steps": steps, "batch_size": 4, "logging_steps": 2, "eval_steps": 100,
                                       "save_steps": 100} | train
    torch.manual_seed(0)
    model = train_model(build_model({"arch": "mlp", "hidden_sizes": [2]}, [4], ["a", "b"]), data, data, params,
                        seed=0, method=HARD, checkpoint_dir=tmp_path / name, callbacks=[history])
    return model, history.logs


def test_the_gradient_norm_is_computed_on_logging_steps_only_and_logged_there(tmp_path, monkeypatch):
    import accelerate

    norms = []
    original = accelerate.Accelerator.clip_grad_norm_

    def spy(self, parameters, max_norm, *args, **kwargs):
        norms.append(max_norm)
        return original(self, parameters, max_norm, *args, **kwargs)

    monkeypatch.setattr(accelerate.Accelerator, "clip_grad_norm_", spy)
    _, logs = _tiny_run(tmp_path, "plain")
    assert norms == [float("inf")] * 3  # steps 2, 4, 6 of 6 (logging_steps 2): no norm on the other steps
    assert [round(log["grad_norm"], 6) > 0 for log in logs if "loss" in log] == [True] * 3
    norms.clear()
    _tiny_run(tmp_path, "clipped", max_grad_norm=1.0)
    assert norms == [1.0] * 6  # clipping needs the norm at every step


def test_without_weight_decay_one_parameter_group_and_the_same_weights(tmp_path, monkeypatch):
    from distillery.training.trainer import DistillationTrainer, Trainer

    groups = []

    def recorded(create):
        def spy(self, model=None):
            optimizer = create(self, model)
            groups.append([len(group["params"]) for group in optimizer.param_groups])
            return optimizer
        return spy

    monkeypatch.setattr(DistillationTrainer, "create_optimizer", recorded(DistillationTrainer.create_optimizer))
    one, _ = _tiny_run(tmp_path, "one")
    _tiny_run(tmp_path, "decay", weight_decay=0.1)
    monkeypatch.setattr(DistillationTrainer, "create_optimizer", recorded(Trainer.create_optimizer))
    two, _ = _tiny_run(tmp_path, "two")  # the Trainer's own split: weights | biases
    assert groups == [[4], [2, 2], [2, 2]]  # with decay, biases keep their own group without it
    for a, b in zip(one.state_dict().values(), two.state_dict().values()):
        assert torch.equal(a, b)  # decay 0 either way: grouping is bookkeeping, not maths


def test_a_batch_already_on_the_device_is_used_as_it_is_with_the_same_weights(tmp_path, monkeypatch):
    """Resident arrays are batched on the training device: no per-tensor ``.to`` through the Trainer's
    ``_prepare_input`` at any step, and the weights are those of a run that makes those calls."""
    from distillery.training.trainer import DistillationTrainer, Trainer

    prepared = []
    original = Trainer._prepare_input
    monkeypatch.setattr(Trainer, "_prepare_input", lambda self, data: prepared.append(data) or original(self, data))
    kept, _ = _tiny_run(tmp_path, "kept")
    assert prepared == []
    monkeypatch.setattr(DistillationTrainer, "_prepare_inputs", Trainer._prepare_inputs)
    moved, _ = _tiny_run(tmp_path, "moved")
    assert len(prepared) > 6  # the Trainer's own: each batch and each of its tensors
    for a, b in zip(kept.state_dict().values(), moved.state_dict().values()):
        assert torch.equal(a, b)


def test_a_batch_with_other_values_is_prepared_by_the_trainer(tmp_path):
    from transformers import TrainingArguments

    from distillery.training.trainer import DistillationTrainer

    model = build_model({"arch": "mlp", "hidden_sizes": [2]}, [4], ["a", "b"])
    trainer = DistillationTrainer(model=model, args=TrainingArguments(output_dir=str(tmp_path), report_to="none"))
    batch = {"features": torch.rand(2, 4), "labels": [0, 1]}
    assert trainer._prepare_inputs(batch) is not batch and trainer._prepare_inputs(batch)["labels"] == [0, 1]
    resident = {"features": torch.rand(2, 4), "labels": torch.tensor([0, 1])}
    assert trainer._prepare_inputs(resident) is resident


def test_the_gradients_are_cleared_from_a_list_during_a_run_with_the_same_weights(tmp_path, monkeypatch):
    import contextlib

    from distillery.training import trainer as trainer_module

    cleared = []
    original = trainer_module.gradients_cleared_from_a_list

    @contextlib.contextmanager
    def spy(model):
        with original(model):
            listed = model.zero_grad  # the run's own, from the list
            yield
            cleared.append(listed)

    monkeypatch.setattr(trainer_module, "gradients_cleared_from_a_list", spy)
    listed, _ = _tiny_run(tmp_path, "listed")
    assert len(cleared) == 1 and "zero_grad" not in vars(listed)  # the model's own method again after the run
    monkeypatch.setattr(trainer_module, "gradients_cleared_from_a_list", lambda model: contextlib.nullcontext())
    walked, _ = _tiny_run(tmp_path, "walked")  # nn.Module.zero_grad at every step
    for a, b in zip(listed.state_dict().values(), walked.state_dict().values()):
        assert torch.equal(a, b)


def test_one_batch_a_step_backpropagates_the_loss_itself_to_the_same_weights(tmp_path, monkeypatch):
    """The Trainer divides a per-batch mean by the step's number of batches; with one batch that is a division by
    one, skipped: the loss compute_loss returns is what reaches backward, and the weights are those of the division."""
    import accelerate

    from distillery.training.trainer import DistillationTrainer

    returned, backpropagated = [], []
    compute_loss, backward = DistillationTrainer.compute_loss, accelerate.Accelerator.backward

    def spy_loss(self, *args, **kwargs):
        returned.append(compute_loss(self, *args, **kwargs))
        return returned[-1]

    def spy_backward(self, loss, **kwargs):
        backpropagated.append(loss)
        return backward(self, loss, **kwargs)

    monkeypatch.setattr(DistillationTrainer, "compute_loss", spy_loss)
    monkeypatch.setattr(accelerate.Accelerator, "backward", spy_backward)
    undivided, _ = _tiny_run(tmp_path, "undivided")
    assert len(backpropagated) == 6 and all(a is b for a, b in zip(returned, backpropagated))
    monkeypatch.setattr(DistillationTrainer, "loss_is_scaled_for_ga", False)  # the Trainer's division, by one
    divided, _ = _tiny_run(tmp_path, "divided")
    assert not any(a is b for a, b in zip(returned[6:], backpropagated[6:]))
    for a, b in zip(undivided.state_dict().values(), divided.state_dict().values()):
        assert torch.equal(a, b)


def test_a_training_step_runs_the_maths_and_only_the_trainers_bookkeeping_besides(tmp_path):
    """The torch operations of a training step (on a GPU, mostly kernel launches), counted in runs of 20 and 40 steps
    within one epoch: the Trainer's are a plain loop's (fetch, forward, KD loss, backward, fused AdamW) and, per step,
    exactly: the DataLoader's profiler marker, accelerate's division of the loss by its gradient-accumulation
    count of one (forward and backward: in its code), the running loss total, and three detaches (the loss and the
    loss's two terms, kept for logging). No division by one of the Trainer's own, no stack of the terms."""
    from bench.trainer_overhead import operations_per_step
    from distillery.methods import get_method
    from distillery.methods.kd import kd_terms

    data = TensorDictDataset(features=torch.rand(400, 4), labels=torch.tensor([0, 1] * 200),
                             teacher_logits=torch.rand(400, 2))  # 100 steps an epoch
    spec = {"arch": "mlp", "hidden_sizes": [2]}

    def trainer(steps):
        params = validate({})["train"] | {"max_steps": steps, "batch_size": 4, "logging_steps": 100,
                                           "eval_steps": 100, "save_steps": 100, "precision": "fp32"}
        train_model(build_model(spec, [4], ["a", "b"]), data, data, params, seed=0, method=get_method("kd"),
                    hyperparams={"T": 4.0, "alpha": 0.5}, checkpoint_dir=tmp_path / str(steps))

    def plain(steps):
        model = build_model(spec, [4], ["a", "b"]).train()
        optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2, weight_decay=0.0, fused=True)  # as train_model
        for step in range(steps):
            batch = data.__getitems__(list(range(4 * step, 4 * step + 4)))
            logits = model(features=batch["features"]).logits
            kd_terms(logits, batch["teacher_logits"], batch["labels"], T=4.0, alpha=0.5).loss.backward()
            optimizer.step()
            for parameter in model.parameters():
                parameter.grad = None

    trained, looped = operations_per_step(trainer, (20, 40)), operations_per_step(plain, (20, 40))
    extra = {name: trained.get(name, 0) - looped.get(name, 0) for name in trained | looped}
    assert {name: count for name, count in extra.items() if count} == {
        "profiler._record_function_enter_new.default": 1, "profiler._record_function_exit._RecordFunction": 1,
        "aten.div.Tensor": 2, "aten.add_.Tensor": 1, "aten.detach.default": 3}


def test_clearing_from_the_list_clears_what_zero_grad_clears():
    from distillery.training.trainer import gradients_cleared_from_a_list

    model = build_model({"arch": "mlp", "hidden_sizes": [2]}, [4], ["a", "b"])
    with gradients_cleared_from_a_list(model):
        model(features=torch.rand(3, 4)).logits.sum().backward()
        assert all(p.grad is not None for p in model.parameters())
        model.zero_grad()
        assert all(p.grad is None for p in model.parameters())
        model(features=torch.rand(3, 4)).logits.sum().backward()
        model.zero_grad(set_to_none=False)  # nn.Module's: zeros in place
        assert all(p.grad is not None and not p.grad.any() for p in model.parameters())
    assert "zero_grad" not in vars(model)


def test_cached_environment_checks_answer_as_the_originals():
    import accelerate.optimizer
    import transformers.trainer

    for cached in (accelerate.optimizer.is_lomo_available, transformers.trainer.is_sagemaker_mp_enabled):
        assert cached.__wrapped__() == cached()


def test_a_nan_loss_is_logged_as_nan(tmp_path):
    """No per-step NaN check (a host sync on a GPU): a NaN loss shows in the log instead of being smoothed over."""
    import math

    _, logs = _tiny_run(tmp_path, "nan", learning_rate=1e30, steps=4)
    assert any(math.isnan(log["loss"]) for log in logs if "loss" in log)


def test_array_datasets_are_moved_to_the_training_device_once(tmp_path, monkeypatch):
    from distillery.data.augment import Jittered

    moved = []
    original = TensorDictDataset.to

    def spy(self, device):
        moved.append(str(device))
        return original(self, device)

    monkeypatch.setattr(TensorDictDataset, "to", spy)
    data = TensorDictDataset(features=torch.rand(8, 2, 2), labels=torch.tensor([0, 1] * 4))
    params = validate({})["train"] | {"max_steps": 3, "batch_size": 4}
    train_model(build_model({"arch": "mlp", "hidden_sizes": [2]}, [2, 2], ["a", "b"]), Jittered(data, 1), data,
                params, seed=0, method=HARD, checkpoint_dir=tmp_path)
    assert moved == ["cpu", "cpu"]  # the training rows (through the jitter wrapper) and the validation rows


def test_a_batch_is_an_index_slice_on_the_datasets_device():
    data = TensorDictDataset(features=torch.arange(12.0).reshape(6, 2), labels=torch.arange(6)).to("cpu")
    batch = data.__getitems__([4, 1])
    assert batch["features"].tolist() == [[8.0, 9.0], [2.0, 3.0]] and batch["labels"].tolist() == [4, 1]
    assert data.device == batch["labels"].device == torch.device("cpu")


def test_train_compile_compiles_the_student_and_a_live_teacher(tmp_path, monkeypatch):
    """``train.compile``: torch.compile of the model trained (by the Trainer) and of a live teacher (here: recorded,
    not compiled, to keep the test fast; bench/trainer_overhead.py --compile measures the real thing)."""
    from distillery.methods import get_method

    compiled = []
    monkeypatch.setattr(torch, "compile", lambda module, **kwargs: compiled.append(type(module).__name__) or module)
    data = TensorDictDataset(features=torch.rand(8, 4), labels=torch.tensor([0, 1] * 4))
    build = lambda: build_model({"arch": "mlp", "hidden_sizes": [2]}, [4], ["a", "b"])  # noqa: E731
    for flag in (False, True):
        params = validate({})["train"] | {"max_steps": 2, "batch_size": 4, "compile": flag}
        train_model(build(), data, data, params, seed=0, method=get_method("kd"), hyperparams={"T": 2.0, "alpha": 0.5},
                    teacher=build(), checkpoint_dir=tmp_path / str(flag))
        assert compiled == ([] if not flag else ["MLPForClassification", "MLPForClassification"])


def test_a_compiled_model_in_fp32_keeps_fp32_matmuls(tmp_path, monkeypatch):
    """On CUDA, transformers and accelerate turn on TF32 matmuls for a compiled model unless told otherwise (here
    accelerate's step is played on the CPU); `precision: fp32` keeps them fp32."""
    from transformers import Trainer

    original = Trainer.create_accelerator_and_postprocess

    def as_on_cuda(self):
        original(self)
        torch.backends.cuda.matmul.allow_tf32 = True  # what accelerate's state does for a compiled fp32 model on CUDA

    monkeypatch.setattr(Trainer, "create_accelerator_and_postprocess", as_on_cuda)
    monkeypatch.setattr(torch, "compile", lambda module, **kwargs: module)
    before = torch.backends.cuda.matmul.allow_tf32  # a torch setting, not an attribute monkeypatch can undo
    torch.backends.cuda.matmul.allow_tf32 = False
    try:
        data = TensorDictDataset(features=torch.rand(8, 4), labels=torch.tensor([0, 1] * 4))
        params = validate({})["train"] | {"max_steps": 2, "batch_size": 4, "compile": True, "precision": "fp32"}
        train_model(build_model({"arch": "mlp", "hidden_sizes": [2]}, [4], ["a", "b"]), data, data, params, seed=0,
                    method=HARD, checkpoint_dir=tmp_path)
        assert torch.backends.cuda.matmul.allow_tf32 is False
    finally:
        torch.backends.cuda.matmul.allow_tf32 = before


def test_a_named_run_shows_its_name_on_its_progress_bar_and_log_lines(tmp_path, capsys, monkeypatch):
    import distillery.training.trainer as trainer

    monkeypatch.setattr(trainer, "slot", lambda: 1)  # the second of the processes training seeds side by side
    bars = []
    original = trainer.tqdm
    monkeypatch.setattr(trainer, "tqdm", lambda *args, **kwargs: bars.append(kwargs) or original(*args, **kwargs))
    data = TensorDictDataset(features=torch.rand(8, 4), labels=torch.tensor([0, 1] * 4))
    params = validate({})["train"] | {"max_steps": 4, "batch_size": 4, "logging_steps": 2, "eval_steps": 100,
                                       "save_steps": 100}
    train_model(build_model({"arch": "mlp", "hidden_sizes": [2]}, [4], ["a", "b"]), data, data, params, seed=0,
                method=HARD, checkpoint_dir=tmp_path / "run", progress="seed 3")
    assert [(bar["desc"], bar["position"], bar["total"]) for bar in bars] == [("seed 3", 1, 4)]
    captured = capsys.readouterr()
    logged = [line for line in (captured.out + captured.err).splitlines() if "'loss'" in line]
    assert logged and all("'run': 'seed 3'" in line for line in logged)
