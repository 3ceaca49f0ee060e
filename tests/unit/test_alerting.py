"""The monitoring host's configuration (pvefail2ban/alerting.py), checked by the tools that will
read it: Debian's promtool for prometheus.yml with our rules, amtool for alertmanager.yml."""

import subprocess
from pathlib import Path

import pytest

from pvefail2ban import alerting
from pvefail2ban.day2.monitoring import write_files
from pvefail2ban.defaults import DEFAULTS
from pvefail2ban.settings import validate

NODES = [("pve1", "10.0.0.11"), ("pve-b", "fd00::12"), ("pve3.example.com", "pve3.example.com")]
TOKEN = "s3cret-token"


def settings(**data):
    return validate({**DEFAULTS, **data})


@pytest.fixture(scope="module")
def tools():
    root = Path(__file__).resolve().parents[2]
    made = subprocess.run(
        [str(root / "scripts/ensure-promtool.sh")], capture_output=True, text=True
    )
    assert made.returncode == 0, f"cannot get promtool: {made.stderr}"
    folder = Path(made.stdout.strip()).parent
    return {"promtool": folder / "promtool", "amtool": folder / "amtool"}


def test_each_node_is_a_target_named_by_its_inventory_name():
    assert alerting.targets(NODES) == [
        ("pve1", "10.0.0.11:9100"),
        ("pve-b", "[fd00::12]:9100"),
        ("pve3.example.com", "pve3.example.com:9100"),
    ]
    text = alerting.scrape_config(NODES)
    assert '- targets: ["[fd00::12]:9100"]' in text
    assert 'labels: {instance: "pve-b"}' in text
    assert text.startswith(f"  - job_name: {alerting.JOB}\n")


def test_a_local_user_gets_a_whole_address():
    assert alerting.mail_address("root") == "root@localhost"
    assert alerting.mail_address("ops@example.com") == "ops@example.com"


def test_the_webhook_token_is_a_file_only_alertmanager_reads():
    files = alerting.monitoring_files(
        settings(
            fail2ban_notify_webhook="https://hooks.example.com/x",
            fail2ban_notify_webhook_token=TOKEN,
        ),
        NODES,
    )
    assert files[alerting.TOKEN_PATH] == (TOKEN.encode(), "640", "root:prometheus")
    config = files[alerting.ALERTMANAGER][0].decode()
    assert TOKEN not in config and f"credentials_file: {alerting.TOKEN_PATH}" in config
    assert "send_resolved: true" in config and "follow_redirects: false" in config
    assert files[alerting.ALERTMANAGER][1:] == ("640", "root:prometheus")  # the URL may be a secret
    without = alerting.monitoring_files(
        settings(fail2ban_notify_webhook="https://hooks.example.com/x"), NODES
    )
    assert alerting.TOKEN_PATH not in without
    assert "authorization" not in without[alerting.ALERTMANAGER][0].decode()


def test_both_services_listen_on_loopback_only():
    args = alerting.args_files()
    assert args["/etc/default/prometheus"].endswith(b'ARGS="--web.listen-address=127.0.0.1:9090"\n')
    alertmanager = args["/etc/default/prometheus-alertmanager"]
    assert b'ARGS="--web.listen-address=127.0.0.1:9093 --cluster.listen-address= ' in alertmanager
    assert alertmanager.endswith(f' --web.config.file={alerting.WEB_CONFIG}"\n'.encode())


def test_alertmanager_s_api_asks_for_a_password_made_once_on_the_host(tmp_path):
    import ctypes
    import importlib.util

    from pvefail2ban.facts import SCRIPTS

    spec = importlib.util.spec_from_file_location("creds", SCRIPTS / "monitoring-credentials.py")
    creds = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(creds)
    password, web = tmp_path / "etc/password", tmp_path / "etc/web.yml"
    assert creds.main(str(password), str(web), "pve-fail2ban") == 0
    secret = password.read_text()
    assert len(secret) == 64 and (password.stat().st_mode & 0o777) == 0o600
    text = web.read_text()
    assert text.startswith("# Managed by pve-fail2ban") and "basic_auth_users:\n" in text
    hashed = text.split("pve-fail2ban: ")[1].strip().strip('"')
    assert hashed.startswith("$2b$10$") and secret not in text
    lib = ctypes.CDLL("libcrypt.so.1")
    lib.crypt.restype, lib.crypt.argtypes = ctypes.c_char_p, [ctypes.c_char_p, ctypes.c_char_p]
    assert lib.crypt(secret.encode(), hashed.encode()).decode() == hashed  # the hash is of it
    assert lib.crypt(b"guess", hashed.encode()).decode() != hashed
    creds.main(str(password), str(web), "pve-fail2ban")  # made once: kept after
    assert password.read_text() == secret and web.read_text() == text
    config = alerting.prometheus_config(NODES)
    assert f"basic_auth: {{username: pve-fail2ban, password_file: {alerting.PASSWORD}}}" in config


@pytest.mark.promtool
def test_prometheus_accepts_its_configuration_with_our_rules(tools, tmp_path):
    text = alerting.prometheus_config(NODES).replace(alerting.RULES_PATH, str(alerting.RULES))
    (tmp_path / "prometheus.yml").write_text(text)
    check = subprocess.run(
        [tools["promtool"], "check", "config", tmp_path / "prometheus.yml"],
        capture_output=True,
        text=True,
    )
    assert check.returncode == 0, check.stdout + check.stderr
    assert "SUCCESS: 9 rules found" in check.stdout + check.stderr


@pytest.mark.promtool
@pytest.mark.parametrize(
    "data",
    [
        {},
        {"fail2ban_notify_mail": "root"},
        {
            "fail2ban_notify_mail": "ops@example.com",
            "fail2ban_notify_webhook": "https://hooks.example.com/x?a=1&b='2'",
            "fail2ban_notify_webhook_token": TOKEN,
        },
        {"fail2ban_notify_webhook": "https://ntfy.example/pve-bäns-\U0001f6a8"},
    ],
)
def test_alertmanager_accepts_its_configuration(tools, tmp_path, data):
    (tmp_path / "alertmanager.yml").write_text(alerting.alertmanager_config(settings(**data)))
    check = subprocess.run(
        [tools["amtool"], "check-config", tmp_path / "alertmanager.yml"],
        capture_output=True,
        text=True,
    )
    assert check.returncode == 0, check.stdout + check.stderr


def test_written_files_are_the_packages_and_this_inventorys(tmp_path):
    paths = write_files(tmp_path / "out", NODES)
    assert [p.name for p in paths] == [
        "pve-fail2ban.dashboard.json",
        "pve-fail2ban.rules.yml",
        "pve-fail2ban.scrape.yml",
    ]
    assert paths[1].read_bytes() == alerting.RULES.read_bytes()
    assert alerting.scrape_config(NODES) in paths[2].read_text()
