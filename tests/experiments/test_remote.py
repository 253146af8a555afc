"""A shared DVC cache on S3 (moto's server on localhost) and experiments shared through a bare git repo.

Clone A reproduces and pushes; a fresh clone B pulls and has nothing left to run; experiments travel with
``dvc exp push/pull``; a remote that is unreachable or refuses the key fails named, touching nothing.
"""
from __future__ import annotations

import hashlib
import json
import re
import subprocess
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml

from distillery.errors import DistilleryError
from distillery.experiments.remote import check_remote

from ..conftest import TINY, deep_merge
from ..repo_utils import ENV, MAKE, copy_repo, dvc_status, git_commit, run, stages_run
from ..s3_utils import free_port, s3_server

BUCKET = "distillery-cache"


def aws_env(home: Path, key: str | None = None, secret: str | None = None) -> dict:
    """``ENV`` without any AWS setting of this machine; with ``key`` and ``secret`` as the credentials."""
    env = {k: v for k, v in ENV.items() if not k.startswith("AWS_")}
    env |= {"AWS_CONFIG_FILE": str(home / "none"), "AWS_SHARED_CREDENTIALS_FILE": str(home / "none"),
            "AWS_EC2_METADATA_DISABLED": "true"}
    return env | ({"AWS_ACCESS_KEY_ID": key, "AWS_SECRET_ACCESS_KEY": secret} if key else {})


def snapshot(repo: Path) -> dict[str, str]:
    """Every file of ``repo`` but git's and DVC's scratch (.dvc/tmp), with the hash of its bytes."""
    return {str(p.relative_to(repo)): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(repo.rglob("*"))
            if p.is_file() and not p.relative_to(repo).parts[0] == ".git"
            and p.relative_to(repo).parts[:2] != (".dvc", "tmp")}


def cached_outputs(repo: Path) -> dict[str, str]:
    """The files of the pipeline's cached outputs (data/, models/) with their hashes."""
    return {k: v for k, v in snapshot(repo).items() if k.split("/")[0] in ("data", "models") and "/." not in k}


@pytest.fixture(scope="module")
def team(tmp_path_factory):
    """Clone A (``dvc repro``, ``make push``, the commit in a bare ``origin``) and a fresh clone B of origin
    after ``make pull`` with the key in its .dvc/config.local, all against one S3 server."""
    root = tmp_path_factory.mktemp("team")
    with s3_server(BUCKET) as s3:
        env = aws_env(root, s3["key"], s3["secret"])
        a = copy_repo(root / "a", deep_merge(TINY, {"train": {"seeds": [0]}}))
        run(["dvc", "remote", "add", "-d", "storage", f"s3://{BUCKET}/cache"], a)
        run(["dvc", "remote", "modify", "storage", "endpointurl", s3["endpoint"]], a)  # MinIO etc.: not a secret
        git_commit(a, "DVC remote: storage")
        run(["dvc", "repro"], a, env=env)
        git_commit(a, "results")
        push = run([*MAKE, "push"], a, env=env)
        run(["git", "clone", "-q", "--bare", str(a), str(root / "origin.git")], root)
        run(["git", "remote", "add", "origin", str(root / "origin.git")], a)

        b = root / "b"
        run(["git", "clone", "-q", str(root / "origin.git"), str(b)], root)
        run(["dvc", "remote", "modify", "--local", "storage", "access_key_id", s3["key"]], b)
        run(["dvc", "remote", "modify", "--local", "storage", "secret_access_key", s3["secret"]], b)
        pull = run([*MAKE, "pull"], b, env=aws_env(root))  # no key in the environment: config.local's
        yield SimpleNamespace(root=root, a=a, b=b, s3=s3, env=env, push=push, pull=pull)


@pytest.mark.slow
def test_fresh_clone_pulls_everything_and_repro_runs_nothing(team):
    assert re.search(r"\d+ files? pushed", team.push.stdout), team.push.stdout
    assert re.search(r"\d+ files? (added|fetched)", team.pull.stdout), team.pull.stdout
    assert dvc_status(team.b, env=aws_env(team.root)) == {}
    repro = run(["dvc", "repro"], team.b, env=aws_env(team.root))
    assert stages_run(repro.stdout) == set(), repro.stdout
    assert (team.b / "reports/metrics.json").read_bytes() == (team.a / "reports/metrics.json").read_bytes()
    outputs = cached_outputs(team.b)
    assert any(k.startswith("models/teacher/") for k in outputs) and any(k.startswith("data/teacher_logits/")
                                                                          for k in outputs)
    assert outputs == cached_outputs(team.a)  # the teacher, its logits, the students: A's bytes
    assert run(["git", "status", "--porcelain"], team.b).stdout == ""


@pytest.mark.slow
def test_a_push_leaves_no_secret_in_any_tracked_file(team):
    secret, key = team.s3["secret"], team.s3["key"]
    for repo in (team.a, team.b, team.root / "origin.git"):
        revs = run(["git", "rev-list", "--all"], repo).stdout.split()
        for needle in (secret, key):
            assert run(["git", "grep", "-F", "-e", needle, *revs], repo, check=False).returncode == 1, repo
    for repo in (team.a, team.b):
        for needle in (secret, key):  # nor in a file git would pick up with `git add -A`
            assert run(["git", "grep", "--untracked", "-F", "-e", needle], repo, check=False).returncode == 1
        assert run(["git", "status", "--porcelain"], repo).stdout == ""
        assert team.s3["endpoint"] in (repo / ".dvc/config").read_text()
    local = team.b / ".dvc/config.local"
    assert secret in local.read_text()
    assert run(["git", "check-ignore", "-q", ".dvc/config.local"], team.b, check=False).returncode == 0


@pytest.fixture
def bare_clone(team, tmp_path):
    """A fresh clone of origin, with no data."""
    clone = tmp_path / "c"
    run(["git", "clone", "-q", str(team.root / "origin.git"), str(clone)], tmp_path)
    return clone


@pytest.mark.slow
@pytest.mark.parametrize("fault, message", [("unreachable", "is unreachable"),
                                            ("wrong key", "refused the credentials")])
@pytest.mark.parametrize("command", ["pull", "push"])
def test_a_remote_that_cannot_be_used_fails_named_and_leaves_the_workspace_as_it_was(
        team, bare_clone, fault, message, command):
    repo = bare_clone if command == "pull" else team.a
    env = aws_env(team.root, team.s3["key"], "wrong" if fault == "wrong key" else team.s3["secret"])
    if fault == "unreachable":
        run(["dvc", "remote", "modify", "--local", "storage", "endpointurl", f"http://127.0.0.1:{free_port()}"],
            repo)
    before = snapshot(repo)
    try:
        result = run([*MAKE, command], repo, check=False, env=env)
    finally:
        (repo / ".dvc/config.local").unlink(missing_ok=True)
        before.pop(".dvc/config.local", None)
    assert result.returncode != 0
    assert f"error: DVC remote 'storage' (s3://{BUCKET}/cache at http://127.0.0.1:" in result.stderr
    assert message in result.stderr, result.stderr
    assert snapshot(repo) == before


@pytest.mark.slow
def test_no_remote_and_an_unknown_remote_are_refused_naming_them(tmp_path):
    subprocess.run(["git", "init", "-q"], cwd=tmp_path, check=True)
    subprocess.run(["dvc", "init", "-q"], cwd=tmp_path, check=True, env=ENV)
    with pytest.raises(DistilleryError, match=r"(?s)no remote specified.*dvc remote add -d"):
        check_remote(root=str(tmp_path))
    with pytest.raises(DistilleryError, match="remote 'elsewhere' doesn't exist"):
        check_remote("elsewhere", root=str(tmp_path))


@pytest.fixture(scope="module")
def shared_experiment(team, tmp_path_factory):
    """Experiment ``t2`` (kd.T = 2) run in A and pushed with ``dvc exp push origin``; a fresh clone C of
    origin after ``dvc exp pull origin t2``."""
    run(["dvc", "exp", "run", "-S", "kd.T=2", "-n", "t2"], team.a, env=team.env)
    run(["dvc", "exp", "push", "origin", "t2"], team.a, env=team.env)  # git refs to origin, data to S3
    c = tmp_path_factory.mktemp("c") / "c"
    run(["git", "clone", "-q", str(team.root / "origin.git"), str(c)], c.parent)
    run(["dvc", "exp", "pull", "origin", "t2"], c, env=team.env)
    ref = run(["git", "for-each-ref", "--format=%(refname)", "refs/exps"], team.a).stdout.split()
    (ref,) = [r for r in ref if r.endswith("/t2")]
    return SimpleNamespace(a=team.a, c=c, env=team.env, metrics=run(["git", "show", f"{ref}:reports/metrics.json"],
                                                                    team.a).stdout)


@pytest.mark.slow
def test_pulled_experiment_is_shown_diffed_and_applied(shared_experiment):
    c, env = shared_experiment.c, shared_experiment.env
    shown = json.loads(run(["dvc", "exp", "show", "--json"], c, env=env).stdout)
    (exp,) = [e for row in shown for e in row.get("experiments") or [] if e["name"] == "t2"]
    assert exp["revs"][0]["data"]["params"]["params.yaml"]["data"]["kd"]["T"] == 2

    diff = run([*MAKE, "diff", "REV=t2"], c, env=env).stdout
    assert re.search(r"\| params\.yaml\s*\| kd\.T\s*\| 2\s*\| 4\.0\s*\|", diff), diff
    assert "`kd`, T = 2.0, alpha = 0.5 (`t2`) → `kd`, T = 4.0, alpha = 0.5 (this change)" in diff, diff
    assert re.search(r"\| reports/metrics\.json\s*\| kd\.", diff), diff

    run(["dvc", "exp", "apply", "t2"], c, env=env)
    assert yaml.safe_load((c / "params.yaml").read_text())["kd"]["T"] == 2
    assert (c / "reports/metrics.json").read_text() == shared_experiment.metrics
    assert dvc_status(c, env=env) == {}  # its students came from S3


def test_each_failure_to_list_the_remote_is_named_with_what_to_fix():
    from botocore.exceptions import EndpointConnectionError, NoCredentialsError

    from distillery.experiments.remote import _problem

    assert _problem(NoCredentialsError(), "storage").startswith("has no credentials: set AWS_ACCESS_KEY_ID")
    assert "`dvc remote modify --local storage ...`" in _problem(NoCredentialsError(), "storage")
    assert _problem(PermissionError("Forbidden"), "storage").startswith("refused the credentials: check")
    assert _problem(EndpointConnectionError(endpoint_url="http://x"), "storage").startswith("is unreachable")


@pytest.mark.slow
def test_a_remote_that_does_not_exist_is_refused_by_check_said_by_pull_and_started_by_push(tmp_path, capsys):
    """A mistyped local remote: `make pull` said only "Everything is up to date" and `make push` made the folder
    unseen."""
    subprocess.run(["git", "init", "-q"], cwd=tmp_path, check=True)
    subprocess.run(["dvc", "init", "-q"], cwd=tmp_path, check=True, env=ENV)
    missing = tmp_path.parent / f"{tmp_path.name}-no-such-remote"
    subprocess.run(["dvc", "remote", "add", "typo", str(missing)], cwd=tmp_path, check=True, env=ENV)
    empty = f"DVC remote 'typo' ({missing}) holds nothing: no such folder or prefix. Check its URL"
    with pytest.raises(DistilleryError, match=re.escape(empty)):
        check_remote("typo", root=str(tmp_path), command="check")
    assert check_remote("typo", root=str(tmp_path), command="pull") == "typo"
    assert capsys.readouterr().out.startswith(f"warning: {empty}")
    assert check_remote("typo", root=str(tmp_path), command="push") == "typo"
    assert "holds nothing yet: this push starts it" in capsys.readouterr().out
    missing.mkdir()
    assert check_remote("typo", root=str(tmp_path), command="pull") == "typo" and capsys.readouterr().out == ""
