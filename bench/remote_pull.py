"""A teammate's fresh clone: `dvc pull` + `dvc repro` from the team's S3 remote vs `dvc repro` from scratch.

Run: `python bench/remote_pull.py` (moto's S3 server on localhost; default params). In a fresh copy of
the repo: `dvc repro` from scratch, `dvc push` to the S3 remote; then in a fresh `git clone` of that copy:
`dvc pull` and `dvc repro` (which must run no stage and leave `reports/metrics.json` byte-identical).
Writes bench/results/remote_pull.json and prints a table.
"""
from __future__ import annotations

import json
import logging
import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from pipeline_time import ENV, REPO, fresh_copy  # noqa: E402

BUCKET = "bench-cache"


def timed(cmd: list[str], cwd: Path, env: dict) -> tuple[float, str]:
    start = time.perf_counter()
    result = subprocess.run(cmd, cwd=cwd, env={**env, "PYTHONPATH": str(cwd)}, check=True, capture_output=True,
                            text=True)
    return time.perf_counter() - start, result.stdout + result.stderr


def main() -> None:
    import boto3
    from moto.server import ThreadedMotoServer

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # the server's log line per request
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    endpoint = f"http://127.0.0.1:{port}"
    env = {k: v for k, v in ENV.items() if not k.startswith("AWS_")} | {
        "AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench", "DVC_NO_ANALYTICS": "1"}
    boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id="bench",
                 aws_secret_access_key="bench").create_bucket(Bucket=BUCKET)
    try:
        with fresh_copy() as work:
            for cmd in (["dvc", "remote", "add", "-d", "storage", f"s3://{BUCKET}/cache"],
                        ["dvc", "remote", "modify", "storage", "endpointurl", endpoint],
                        ["git", "add", "-A"], ["git", "-c", "user.name=b", "-c", "user.email=b@b", "commit", "-qm", "r"]):
                subprocess.run(cmd, cwd=work, env=env, check=True, capture_output=True)
            scratch, _ = timed(["dvc", "repro"], work, env)
            for cmd in (["git", "add", "-A"], ["git", "-c", "user.name=b", "-c", "user.email=b@b", "commit", "-qm", "o"]):
                subprocess.run(cmd, cwd=work, check=True, capture_output=True)
            push, _ = timed(["dvc", "push"], work, env)
            clone = work / "clone"
            subprocess.run(["git", "clone", "-q", str(work), str(clone)], check=True)
            pull, pulled = timed(["dvc", "pull"], clone, env)
            repro, log = timed(["dvc", "repro"], clone, env)
            assert set(re.findall(r"Running stage '([^']+)'", log)) <= {"sources"}, log  # sources: every run
            identical = (clone / "reports/metrics.json").read_bytes() == (work / "reports/metrics.json").read_bytes()
            cache = sum(p.stat().st_size for p in (work / ".dvc/cache").rglob("*") if p.is_file())
    finally:
        server.stop()
    result = {"cpus": os.cpu_count(), "python": sys.version.split()[0], "endpoint": "moto on localhost",
              "params": "default params.yaml", "dvc_repro_from_scratch_s": scratch, "dvc_push_s": push,
              "dvc_pull_s": pull, "dvc_repro_after_pull_s": repro, "cache_bytes": cache,
              "pull_plus_repro_over_scratch": (pull + repro) / scratch, "metrics_json_identical": identical,
              "dvc_pull_said": pulled.strip().splitlines()[-1]}
    out = REPO / "bench/results/remote_pull.json"
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"{result['cpus']} CPUs, python {result['python']}, S3: moto on localhost, cache {cache / 1e6:.1f} MB")
    print("| fresh clone | seconds |\n|---|---|")
    print(f"| `dvc repro` from scratch | {scratch:.1f} |")
    print(f"| `dvc pull` | {pull:.1f} |")
    print(f"| `dvc repro` after the pull (runs no stage) | {repro:.1f} |")
    print(f"| **pull + repro / repro from scratch** | **{result['pull_plus_repro_over_scratch']:.3f}** |")
    print(f"(`dvc push` after the run: {push:.1f} s; reports/metrics.json byte-identical: {identical})")


if __name__ == "__main__":
    main()
