"""Fixtures of the unit tests."""

import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def fail2ban_regex():
    tool = subprocess.run(
        [str(ROOT / "scripts/ensure-fail2ban-regex.sh")], capture_output=True, text=True
    )
    assert tool.returncode == 0, f"cannot get fail2ban-regex: {tool.stderr}"
    path = tool.stdout.strip()

    def run(*args):
        out = subprocess.run([path, *map(str, args)], capture_output=True, text=True, timeout=120)
        assert out.returncode == 0, out.stderr
        return out.stdout

    return run
