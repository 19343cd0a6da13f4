"""`fondation operator` refuses a bad configuration at start, naming it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path


def test_bad_settings_exit_2_with_every_problem_named() -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "fondation_cli",
            "operator",
            "--max-concurrent-jobs=-1",
            "--image-pull-policy=Sometimes",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={"PATH": "/usr/bin:/bin", "FONDATION_TOLERATIONS": "not json"},
    )
    assert result.returncode == 2
    assert "--max-concurrent-jobs / FONDATION_MAX_CONCURRENT_JOBS" in result.stderr
    assert "--image-pull-policy / FONDATION_IMAGE_PULL_POLICY" in result.stderr
    assert "FONDATION_TOLERATIONS: not valid JSON" in result.stderr


def test_no_cluster_connection_is_a_clear_error(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "fondation_cli", "operator", "--kubeconfig=/nonexistent"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)},
    )
    assert result.returncode == 2
    assert "kubeconfig /nonexistent" in result.stderr


def test_bad_convex_settings_are_named_too(tmp_path: Path) -> None:
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(
        "apiVersion: v1\nkind: Config\ncurrent-context: c\n"
        "clusters: [{name: k, cluster: {server: 'https://127.0.0.1:1'}}]\n"
        "users: [{name: u, user: {token: t}}]\n"
        "contexts: [{name: c, context: {cluster: k, user: u}}]\n"
    )
    result = subprocess.run(
        [sys.executable, "-m", "fondation_cli", "operator", f"--kubeconfig={kubeconfig}"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={"PATH": "/usr/bin:/bin", "CONVEX_URL": "not a url"},
    )
    assert result.returncode == 2, result.stderr
    assert "CONVEX_URL" in result.stderr
    assert "Traceback" not in result.stderr
