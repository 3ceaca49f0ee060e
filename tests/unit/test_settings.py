import runpy

import pytest

from lab.config import ROOT
from pvefail2ban.defaults import DEFAULTS, SECTIONS, group_data_text
from pvefail2ban.settings import SettingsError, normalise_ports, validate


def test_defaults_are_the_guides_values():
    s = validate(DEFAULTS)
    assert (s["sshd_enabled"], s["sshd_maxretry"], s["sshd_port"]) == (True, 3, None)
    assert (s["proxmox_port"], s["proxmox_maxretry"], s["proxmox_bantime"]) == (
        ["443", "80", "8006"],
        3,
        "600",
    )
    assert (s["backend"], s["banaction"], s["lockout_protection"]) == ("auto", "auto", True)
    assert s["recidive_enabled"] is False and s["bantime_increment"] is False


def test_every_default_has_a_meaning():
    for _, settings in SECTIONS:
        for key, _, meaning in settings:
            assert key.startswith("fail2ban_") and len(meaning) > 10, key


def test_group_data_documents_the_defaults_without_a_second_copy():
    """group_data/all.py is generated from pvefail2ban/defaults.py and sets nothing itself."""
    path = ROOT / "group_data/all.py"
    assert path.read_text() == group_data_text(), (
        "run: python -m pvefail2ban.defaults > group_data/all.py"
    )
    assert not [k for k in runpy.run_path(str(path)) if k.startswith("fail2ban_")]
    for key, default in DEFAULTS.items():
        assert f"# {key} = {default!r}\n" in path.read_text()


def test_readme_shows_every_default_as_it_is():
    readme = (ROOT / "README.md").read_text()
    for key, default in DEFAULTS.items():
        assert f"| `{key}` | `{default!r}` |" in readme.replace('"', "'"), key


@pytest.mark.parametrize(
    "key,value",
    [
        ("fail2ban_sshd_maxretry", 0),
        ("fail2ban_sshd_maxretry", -3),
        ("fail2ban_sshd_maxretry", "3"),
        ("fail2ban_proxmox_maxretry", True),
        ("fail2ban_proxmox_maxretry", 2.5),
        ("fail2ban_proxmox_bantime", 0),
        ("fail2ban_proxmox_bantime", -5),
        ("fail2ban_sshd_bantime", "10 fortnights"),
        ("fail2ban_sshd_bantime", ""),
        ("fail2ban_findtime", -1),
        ("fail2ban_findtime", "0m"),
        ("fail2ban_proxmox_port", [0]),
        ("fail2ban_proxmox_port", [70000]),
        ("fail2ban_proxmox_port", []),
        ("fail2ban_proxmox_port", "https;8006"),
        ("fail2ban_sshd_port", ["22 23"]),
        ("fail2ban_sshd_port", ""),
        ("fail2ban_ignoreip", ["10.0.0.300"]),
        ("fail2ban_ignoreip", ["10.0.0.0/33"]),
        ("fail2ban_ignoreip", ["fe80::zz"]),
        ("fail2ban_ignoreip", ["bad host!"]),
        ("fail2ban_ignoreip", [""]),
        ("fail2ban_ignoreip", "10.0.0.1,10.0.0.2"),
        ("fail2ban_ignoreip", 42),
        ("fail2ban_backend", "journal"),
        ("fail2ban_banaction", "ufw"),
        ("fail2ban_sshd_enabled", "yes"),
        ("fail2ban_lockout_protection", 0),
        ("fail2ban_recidive_maxretry", 0),
        ("fail2ban_apt_lock_timeout", -1),
        ("fail2ban_ping_timeout", 0),
        ("fail2ban_pbs_enabled", "auto"),
        ("fail2ban_pbs_port", [8007, 70000]),
        ("fail2ban_pbs_maxretry", 0),
        ("fail2ban_pbs_bantime", "soon"),
        ("fail2ban_pmg_enabled", None),
        ("fail2ban_pmg_port", ["8006/tcp"]),
        ("fail2ban_pmg_maxretry", "3"),
        ("fail2ban_pmg_bantime", 0),
    ],
)
def test_bad_values_are_refused_naming_key_and_value(key, value):
    with pytest.raises(SettingsError) as error:
        validate(dict(DEFAULTS, **{key: value}))
    assert key in str(error.value) and repr(value) in str(error.value)
    assert "nothing was changed" in str(error.value)


def test_a_mistyped_key_is_refused():
    with pytest.raises(SettingsError, match="fail2ban_sshd_maxretries: unknown setting"):
        validate(dict(DEFAULTS, fail2ban_sshd_maxretries=5))


def test_all_problems_are_reported_at_once():
    with pytest.raises(SettingsError) as error:
        validate(dict(DEFAULTS, fail2ban_sshd_maxretry=0, fail2ban_backend="x"))
    assert "fail2ban_sshd_maxretry" in str(error.value) and "fail2ban_backend" in str(error.value)


@pytest.mark.parametrize(
    "key,value",
    [
        ("fail2ban_sshd_bantime", -1),
        ("fail2ban_sshd_bantime", "-1"),
        ("fail2ban_sshd_bantime", "1h 30m"),
        ("fail2ban_proxmox_bantime", "1w"),
        ("fail2ban_findtime", 600),
        ("fail2ban_sshd_port", [22, "2222"]),
        ("fail2ban_ignoreip", ["192.0.2.0/24", "2001:db8::/32", "admin.example.com", "192.0.2.7"]),
    ],
)
def test_good_values_pass(key, value):
    validate(dict(DEFAULTS, **{key: value}))


def test_ports_are_normalised():
    assert normalise_ports("https, 8006") == ["443", "8006"]
    assert normalise_ports([22, "ssh"]) == ["22", "22"]


def test_service_names_become_numbers_and_unknown_names_are_refused():
    """No node depends on its /etc/services: names are turned into numbers on the controller."""
    assert validate(dict(DEFAULTS))["proxmox_port"] == ["443", "80", "8006"]
    with pytest.raises(
        SettingsError, match="'no-such-service' is not a service name this controller knows"
    ):
        validate(dict(DEFAULTS, fail2ban_proxmox_port=["no-such-service"]))
