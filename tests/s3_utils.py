"""A real S3 endpoint on localhost for the remote tests: moto's standalone server with its IAM checks on."""
from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
import urllib.request
from contextlib import contextmanager
from typing import Iterator

import pytest


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_for(port: int, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


@contextmanager
def s3_server(bucket: str) -> Iterator[dict]:
    """moto's server on a free port with ``bucket``; yields its ``endpoint`` and an IAM user's ``key`` and
    ``secret``: every request after the set-up must be signed with them, as on a real S3."""
    pytest.importorskip("moto.server", reason="moto[server] is not installed (requirements.txt)")
    import boto3

    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    endpoint = f"http://127.0.0.1:{port}"
    try:
        _wait_for(port)
        setup = dict(endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id="setup",
                     aws_secret_access_key="setup")
        iam = boto3.client("iam", **setup)
        iam.create_user(UserName="dvc")
        everything = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}
        iam.put_user_policy(UserName="dvc", PolicyName="all", PolicyDocument=json.dumps(everything))
        key = iam.create_access_key(UserName="dvc")["AccessKey"]
        boto3.client("s3", **setup).create_bucket(Bucket=bucket)
        urllib.request.urlopen(urllib.request.Request(  # from now on moto checks every request's signature
            f"{endpoint}/moto-api/reset-auth", data=b"0", method="POST", headers={"Content-Type": "text/plain"}))
        yield {"endpoint": endpoint, "key": key["AccessKeyId"], "secret": key["SecretAccessKey"]}
    finally:
        server.terminate()
        server.wait(timeout=30)
