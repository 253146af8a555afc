"""The GitHub Actions workflows pass zizmor's security audit (offline: no network, no GitHub API).

zizmor (pinned in requirements.txt) flags template injection (``${{ }}`` expanded inside ``run:``), actions not
pinned to a commit SHA, a checkout that keeps its credentials, over-broad permissions, and more.
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
WORKFLOWS = REPO / ".github" / "workflows"
ZIZMOR = Path(sys.executable).parent / "zizmor"


def zizmor(*args: str) -> subprocess.CompletedProcess:
    """zizmor's result on ``args``, offline, without colour."""
    assert ZIZMOR.exists(), f"{ZIZMOR} is missing: `make setup` installs requirements.txt"
    return subprocess.run([str(ZIZMOR), "--offline", "--color=never", *args], check=False, capture_output=True,
                          text=True, timeout=120)


def test_workflows_have_no_findings():
    """zizmor finds nothing in .github/workflows (its exit status is 0 only then)."""
    result = zizmor("--format=plain", str(WORKFLOWS))
    assert result.returncode == 0, f"zizmor found problems in {WORKFLOWS}:\n{result.stdout}{result.stderr}"


def test_audit_catches_template_injection(tmp_path):
    """pr.yml with ``${{ github.base_ref }}`` expanded inside ``run:`` again is a template-injection finding."""
    safe = 'REV="origin/$BASE_REF"'
    text = (WORKFLOWS / "pr.yml").read_text()
    assert safe in text, f"pr.yml no longer has {safe}: update this test"
    workflows = tmp_path / ".github" / "workflows"
    workflows.mkdir(parents=True)
    (workflows / "pr.yml").write_text(text.replace(safe, "REV=origin/${{ github.base_ref }}"))
    result = zizmor("--format=json", str(workflows))
    findings = [finding["ident"] for finding in json.loads(result.stdout)]
    assert "template-injection" in findings, f"{findings}\n{result.stderr}"
