"""The methods registry: discovery, lookup by name, and the rules of a declaration."""
import pytest

from distillery.errors import DistilleryError
from distillery.methods import HARD, METHODS, SEAM_MODULES, Method, get_method
from distillery.methods.kd import kd_terms


def test_every_method_module_is_registered_under_its_module_name():
    import pkgutil

    import distillery.methods as package

    modules = {m.name for m in pkgutil.iter_modules(package.__path__) if m.name not in SEAM_MODULES and not m.name.startswith("_")}
    assert set(METHODS) == modules
    assert next(iter(METHODS)) == "kd"  # listed first


def test_reading_the_declarations_imports_no_torch():
    """Every stage reads the registry through params.yaml's schema; those that train nothing (prepare, transfer,
    plots) would pay torch's import (about 1 s) for it. A method module imports torch in the functions that run it."""
    import subprocess
    import sys

    code = "import sys; sys.modules['torch'] = None; import distillery.methods, distillery.params"  # torch: absent
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, "a module imports torch at its top:\n" + result.stderr[-1500:]


def test_unknown_method_lists_the_valid_ones():
    with pytest.raises(DistilleryError, match=r"kd.method = 'kdd': unknown method; did you mean 'kd'\? valid: kd"):
        get_method("kdd")
    assert get_method("kd") is METHODS["kd"]


def test_declarations_are_checked():
    with pytest.raises(ValueError, match="unknown needs"):
        Method("x", "paper", loss=lambda i, hp: None, needs=frozenset({"telepathy"}))
    with pytest.raises(ValueError, match="make_helpers"):
        Method("x", "paper", loss=lambda i, hp: None, needs=frozenset({"helpers"}))


def test_a_param_the_loss_reads_but_its_method_does_not_declare_is_named(digits, tmp_path, monkeypatch,
                                                                         one_torch_thread):
    """A loss reading ``hp["beta"]`` with only ``gamma`` declared stops training with an error naming the method, the
    param and those it declares (it was a bare ``KeyError: 'beta'`` from each seed's process)."""
    from distillery.schema import FLOAT, Field
    from distillery.training.students import train_students

    from ..conftest import make_params
    from ..training.test_students import fake_teacher_logits

    method = Method("my_kd", "paper", params={"gamma": Field(FLOAT, None, 0.5)},
                    loss=lambda inputs, hp: kd_terms(inputs.student.logits, inputs.teacher_logits, inputs.labels,
                                                     hp["T"], hp["beta"]))
    monkeypatch.chdir(tmp_path)
    fake_teacher_logits(digits, tmp_path)
    with pytest.raises(DistilleryError, match=r"^kd.method = 'my_kd': its loss reads the param 'beta', which the "
                                              r"method does not declare; it declares T, alpha, gamma \(METHOD's "
                                              r"shared and params in distillery/methods/my_kd.py\)$"):
        train_students(method, make_params(train={"seeds": [0]}), digits, tmp_path / "students", logits_dir=tmp_path)


def test_hyperparams_are_the_shared_ones_it_reads_and_its_own():
    kd = {"method": "kd", "T": 2.0, "alpha": 0.3, "other": {"beta": 1.0}}
    assert METHODS["kd"].hyperparams(kd) == {"T": 2.0, "alpha": 0.3}
    own = Method("other", "paper", loss=lambda i, hp: None, shared=("T",))
    assert own.hyperparams(kd) == {"T": 2.0, "beta": 1.0}
    assert HARD.hyperparams(kd) == {} and not HARD.teacher_needed


def test_kd_loss_reads_the_step_inputs():
    import torch

    from distillery.methods import StepInputs
    from transformers.modeling_outputs import SequenceClassifierOutput

    s, t, y = torch.randn(4, 3), torch.randn(4, 3), torch.tensor([0, 1, 2, 0])
    inputs = StepInputs(student=SequenceClassifierOutput(logits=s), labels=y, teacher_logits=t)
    got = METHODS["kd"].loss(inputs, {"T": 3.0, "alpha": 0.4})
    assert torch.equal(got.loss, kd_terms(s, t, y, 3.0, 0.4).loss)


def test_readme_methods_table_is_the_one_the_declarations_give():
    from distillery.methods.__main__ import methods_table

    from ..conftest import REPO

    page = (REPO / "docs" / "methods.md").read_text()
    assert methods_table() in page, "docs/methods.md's methods table is stale: paste `python -m distillery.methods`"
    assert methods_table().count("\n") == len(METHODS) + 1


def test_the_adding_a_method_template_pasted_as_a_module_runs_on_a_batch_of_transfer_rows():
    """docs/methods.md's template, run as a module of ``distillery.methods``: a finite loss and a CE of 0 on a batch of
    transfer rows only (labels all -100), the terms it declares, and its own param read."""
    import re
    import types

    import torch

    from distillery.methods.losses import UNLABELLED

    from ..conftest import REPO
    from .problem import hyperparams, make_problem

    page = (REPO / "docs" / "methods.md").read_text()
    template = re.search(r"```python\n(.*?)```", page[page.index("## Adding a method"):], re.S).group(1)
    module = types.ModuleType("distillery.methods.my_kd")
    module.__package__ = "distillery.methods"
    exec(compile(template, "docs/methods.md", "exec"), module.__dict__)
    method = module.METHOD
    problem = make_problem(method)
    transfer_rows = problem.step_inputs(torch.full_like(problem.labels, UNLABELLED))
    out = method.loss(transfer_rows, problem.hp)
    assert torch.isfinite(out.loss) and out.terms["ce"].item() == 0.0 and tuple(out.terms) == method.terms
    assert method.loss(transfer_rows, hyperparams(method, gamma=0.0)).loss < out.loss


def test_a_method_s_params_in_your_own_code_take_its_declared_defaults_and_a_missing_shared_one_is_named():
    """`get_method('dkd').hyperparams({'T': 4, 'alpha': 0.5})` gave {'T': 4.0}, and its loss a bare KeyError."""
    assert get_method("dkd").hyperparams({"T": 4.0, "alpha": 0.5}) == {"T": 4.0, "alpha": 1.0, "beta": 8.0,
                                                                        "warmup_steps": 0}
    assert get_method("dkd").hyperparams({"T": 2.0, "dkd": {"beta": 2.0}})["beta"] == 2.0
    with pytest.raises(DistilleryError, match="kd.method = 'kd' reads kd.T, kd.alpha; not given: kd.alpha"):
        get_method("kd").hyperparams({"T": 4.0})
