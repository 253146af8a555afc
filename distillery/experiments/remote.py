"""``make pull`` / ``make push``: check that the DVC remote answers, then run ``dvc pull`` / ``dvc push``.

DVC's own errors for a remote it cannot use name a URL but not the remote, and a refused key reads
``unexpected error - Forbidden``; the check names the remote, its URL and endpoint, and what to fix,
before DVC touches the workspace.
"""
from __future__ import annotations

import argparse
import subprocess
import sys

from ..errors import DistilleryError, exit_on_error

CREDENTIALS = ("AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY in the environment, or access_key_id and "
               "secret_access_key in .dvc/config.local (`dvc remote modify --local {name} ...`)")


def _problem(exc: Exception, name: str) -> str:
    """What ``exc``, raised while listing remote ``name``, says about it, with what to fix."""
    from botocore.exceptions import NoCredentialsError

    if isinstance(exc, NoCredentialsError):
        return f"has no credentials: set {CREDENTIALS.format(name=name)}"
    if isinstance(exc, PermissionError):
        return f"refused the credentials: check {CREDENTIALS.format(name=name)}, and the bucket's permissions"
    return "is unreachable: check its URL and endpointurl (`dvc remote list`, `dvc config -l`) and the network"


def check_remote(name: str | None = None, root: str = ".", command: str = "check") -> str:
    """Contact DVC remote ``name`` (None: the default remote) and return its name.

    Raises ``DistilleryError`` naming the remote when none is configured, or the remote is unreachable or
    refuses the credentials, or (``command`` ``check``) its folder or bucket prefix does not exist. ``pull`` says so
    in a warning (a mistyped path pulled nothing and said only "Everything is up to date"; a new team's first CI
    run pulls from a remote that holds nothing yet), ``push`` that it starts the remote.
    """
    from dvc.config import RemoteConfigError
    from dvc.repo import Repo

    with Repo(root) as repo:
        try:
            remote = repo.cloud.get_remote(name)
        except RemoteConfigError as exc:
            raise DistilleryError(f"{exc} (docs/team.md)") from None
        config = repo.config["remote"][remote.name]
        where = config["url"] + (f" at {config['endpointurl']}" if config.get("endpointurl") else "")
        try:
            exists = remote.fs.exists(remote.path)
        except Exception as exc:  # noqa: BLE001 (any failure to list the remote is reported, named)
            raise DistilleryError(f"DVC remote '{remote.name}' ({where}) {_problem(exc, remote.name)}\n"
                                  f"  ({type(exc).__name__}: {exc})") from None
    empty = (f"DVC remote '{remote.name}' ({where}) holds nothing: no such folder or prefix. Check its URL (`dvc "
             f"remote list`), or push to it first (`make push REMOTE={remote.name}`)")
    if not exists and command == "check":
        raise DistilleryError(empty)
    if not exists:  # a new team's first CI run pulls from a remote nothing was pushed to yet
        print(f"warning: {empty}: nothing to pull" if command == "pull" else
              f"DVC remote '{remote.name}' ({where}) holds nothing yet: this push starts it", flush=True)
    return remote.name


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m distillery.experiments.remote", description=__doc__.split("\n")[0])
    parser.add_argument("command", choices=["check", "pull", "push"])
    parser.add_argument("-r", "--remote", help="the DVC remote (default: the default remote)")
    args, dvc_args = parser.parse_known_args(argv)  # the rest goes to `dvc pull` / `dvc push`
    with exit_on_error():
        name = check_remote(args.remote, command=args.command)
    if args.command != "check":
        sys.exit(subprocess.run(["dvc", args.command, "-r", name, *dvc_args]).returncode)


if __name__ == "__main__":
    main()
