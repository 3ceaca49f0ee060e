import subprocess
import sys

from lab.config import ROOT

CHECK = ROOT / "pvefail2ban/scripts/ignoreip_check.py"


def run(dump):
    return subprocess.run([sys.executable, str(CHECK)], input=dump, capture_output=True, text=True)


def test_good_entries_pass():
    dump = (
        "['set', 'sshd', 'addignoreip', '127.0.0.1/8', '::1', '10.213.77.1', 'pve2.example.com']\n"
        "['set', 'sshd', 'maxretry', 3]\n"
    )
    assert run(dump).returncode == 0


def test_an_entry_fail2ban_dies_on_is_named():
    out = run("['set', 'sshd', 'addignoreip', '@docker/abc', '10.0.0.1']\n")
    assert out.returncode == 1 and "jail sshd: ignoreip entry '@docker/abc'" in out.stdout
