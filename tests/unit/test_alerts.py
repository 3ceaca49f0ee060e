"""The alert rules and the dashboard that ship with the package, checked with Debian's promtool:
the rules parse, each alert fires on series that should make it fire and stays silent otherwise
(tests/prometheus/pve-fail2ban.test.yml), every dashboard query is valid PromQL over our metrics."""

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "pvefail2ban/prometheus/pve-fail2ban.rules.yml"
TESTS = ROOT / "tests/prometheus/pve-fail2ban.test.yml"
DASHBOARD = ROOT / "pvefail2ban/prometheus/pve-fail2ban.dashboard.json"
# what the rules and the dashboard may ask: our metrics, node_exporter's about our file, `up`
METRICS = re.compile(r"^(f2b_[a-z_]+|node_textfile_mtime_seconds|up)$")


@pytest.fixture(scope="session")
def promtool():
    tool = subprocess.run(
        [str(ROOT / "scripts/ensure-promtool.sh")], capture_output=True, text=True
    )
    assert tool.returncode == 0, f"cannot get promtool: {tool.stderr}"
    path = tool.stdout.strip()

    def run(*args, cwd=ROOT):
        return subprocess.run(
            [path, *map(str, args)], capture_output=True, text=True, cwd=cwd, timeout=120
        )

    return run


pytestmark = pytest.mark.promtool


def test_the_rules_parse(promtool):
    done = promtool("check", "rules", RULES)
    assert done.returncode == 0 and "SUCCESS: 9 rules found" in done.stdout, (
        done.stdout + done.stderr
    )


def test_each_alert_fires_when_it_should_and_only_then(promtool):
    done = promtool("test", "rules", TESTS.name, cwd=TESTS.parent)
    assert done.returncode == 0 and "SUCCESS" in done.stdout, done.stdout + done.stderr


def test_every_alert_is_tested_to_fire():
    alerts = set(re.findall(r"^\s+- alert: (\w+)$", RULES.read_text(), re.M))
    tested = set(re.findall(r"alertname: (\w+)", TESTS.read_text()))
    firing = re.findall(r"alertname: (\w+)\n\s+exp_alerts:\n\s+- exp_labels", TESTS.read_text())
    assert alerts == tested == set(firing) and len(alerts) == 9


def test_the_alert_tests_can_fail(promtool, tmp_path):
    """A rule that never fires (its threshold raised) fails its test: the tests see the rules."""
    folder = tmp_path / "pvefail2ban/prometheus"
    folder.mkdir(parents=True)
    (folder / RULES.name).write_text(
        RULES.read_text().replace("f2b_jail_banned_enforced == 0", "f2b_jail_banned_enforced == 7")
    )
    (tmp_path / "tests/prometheus").mkdir(parents=True)
    shutil.copy(TESTS, tmp_path / "tests/prometheus")
    done = promtool("test", "rules", TESTS.name, cwd=tmp_path / "tests/prometheus")
    assert done.returncode != 0 and "Fail2banBanNotEnforced" in done.stdout + done.stderr


def dashboard_queries():
    panels = json.loads(DASHBOARD.read_text())["panels"]
    return [(p["title"], t["expr"]) for p in panels for t in p.get("targets", [])]


def test_every_dashboard_query_is_valid_promql_over_our_metrics(promtool, tmp_path):
    queries = dashboard_queries()
    assert len(queries) >= 6
    rules = {"groups": [{"name": "dashboard", "rules": [
        {"record": f"dashboard:query{n}", "expr": expr.replace("$__rate_interval", "5m").replace("$instance", ".*")}
        for n, (_, expr) in enumerate(queries)
    ]}]}  # fmt: skip
    path = tmp_path / "dashboard.rules.yml"
    path.write_text(json.dumps(rules))  # JSON is YAML
    done = promtool("check", "rules", path)
    assert done.returncode == 0, done.stdout + done.stderr
    for title, expr in queries:
        names = metric_names(expr)
        assert names and all(METRICS.match(n) for n in names), (title, names)


def test_the_metric_names_of_a_query_are_found():
    expr = 'time() - max by (instance) (node_textfile_mtime_seconds{file=~".*x"}) unless on(a) up'
    assert metric_names(expr) == {"node_textfile_mtime_seconds", "up"}
    assert metric_names("sum(rate(wrong_metric[5m]))") == {"wrong_metric"}


def metric_names(expr):
    """The metric names a PromQL expression reads: its identifiers, once label matchers, grouping
    clauses, ranges and function calls are taken away."""
    text = re.sub(r'"[^"]*"', '""', expr)
    text = re.sub(r"\{[^}]*\}|\[[^\]]*\]", "", text)
    text = re.sub(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", "", text)
    words = re.findall(r"\b([A-Za-z_:][A-Za-z0-9_:]*)\b(?!\s*\()", text)
    return {w for w in words if w not in ("and", "or", "unless", "bool", "offset")}
