"""The package as a pyinfra user adds it to a deploy repository of their own: a wheel built from
this checkout, installed into a fresh venv, used from an empty folder with no group_data of ours."""

import os
import re
import shutil
import subprocess
import sys
import zipfile

import pytest

from lab.checks import ops_with_changes
from lab.config import ROOT

USER_DEPLOY = "from pvefail2ban import deploy_fail2ban\n\ndeploy_fail2ban()\n"


@pytest.fixture(scope="module")
def user_repo(lab_control, tmp_path_factory):
    """A fresh lab, and a folder holding only an inventory and a three-line deploy file, with a venv
    (outside it) into which the wheel is installed."""
    lab_control.up()
    work = tmp_path_factory.mktemp("package")
    dist = work / "dist"
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(dist), str(ROOT)],
        check=True,
        timeout=600,
    )
    wheel = next(dist.glob("pve_fail2ban-*.whl"))
    venv = work / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    subprocess.run([str(venv / "bin/pip"), "install", "-q", str(wheel)], check=True, timeout=600)
    repo = work / "my-deploys"
    repo.mkdir()
    shutil.copy(lab_control.inventory_path, repo / "inventory.py")
    (repo / "deploy.py").write_text(USER_DEPLOY)
    return repo, venv, wheel


def user_run(repo, venv):
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    out = subprocess.run(
        [str(venv / "bin/pyinfra"), "-y", "inventory.py", "deploy.py"],
        cwd=repo,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
        stdin=subprocess.DEVNULL,
    )
    out.text = out.stdout + out.stderr
    return out


def test_the_wheel_carries_everything_the_deploy_reads(user_repo):
    _, venv, wheel = user_repo
    names = zipfile.ZipFile(wheel).namelist()
    for needed in (
        "pvefail2ban/templates/etc/fail2ban/jail.d/_jail.j2",
        "pvefail2ban/files/etc/fail2ban/filter.d/proxmox.conf",
        "pvefail2ban/files/etc/fail2ban/filter.d/proxmox-rest-server.conf",
        "pvefail2ban/files/etc/fail2ban/filter.d/pdm.conf",
        "pvefail2ban/scripts/apply.sh",
        "pvefail2ban/scripts/probe.py",
        "pvefail2ban/scripts/nodelib.py",
        "pvefail2ban/tasks/configure.py",
        "pvefail2ban/day2/deploys.py",
        "pvefail2ban/products.py",
        "pvefail2ban/defaults.py",
    ):
        assert needed in names, needed
    where = subprocess.run(
        [str(venv / "bin/python"), "-c", "import pvefail2ban; print(pvefail2ban.__file__)"],
        capture_output=True,
        text=True,
        cwd="/",
        check=True,
    ).stdout
    assert str(venv) in where and str(ROOT) not in where


def test_a_users_own_deploy_file_converges_and_the_second_run_changes_nothing(
    lab_control, user_repo
):
    repo, venv, _ = user_repo
    assert sorted(p.name for p in repo.iterdir()) == ["deploy.py", "inventory.py"]
    first = user_run(repo, venv)
    assert first.returncode == 0, first.report
    for node in lab_control.nodes():
        assert re.search(
            rf"\[{node.name}\] fail2ban [\d.]+; sshd \[[^]]+\] failed .*; proxmox \[", first.text
        ), node.name
        assert "Jail list:\tproxmox, pveproxy, sshd" in node.sh("fail2ban-client status")[1]
        assert (
            "maxretry  = 3" in node.sh("cat /etc/fail2ban/jail.d/02_proxmox.local")[1]
        )  # the package's default
    second = user_run(repo, venv)
    assert second.returncode == 0, second.report
    assert "--> Results:" in second.text and ops_with_changes(second.text) == [], second.text[
        -3000:
    ]
