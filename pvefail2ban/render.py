"""The bytes of every file the deploy puts on a node, rendered locally from templates/ and files/."""
from pathlib import Path

import jinja2

ROOT = Path(__file__).resolve().parent.parent
TEMPLATES = ROOT / "templates"
FILES = ROOT / "files"
FILTER_SOURCE = FILES / "etc/fail2ban/filter.d/proxmox.conf"

_env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(TEMPLATES)), undefined=jinja2.StrictUndefined,
                          keep_trailing_newline=True, autoescape=False)


def render_files(plan, settings):
    """{path on the node: bytes} for this node's plan."""
    files = {}
    for jail in plan.jails:
        template = _env.get_template(jail.path.lstrip("/") + ".j2")
        text = template.render(jail=jail, plan=plan, bantime_increment=settings["bantime_increment"],
                               lockout_protection=settings["lockout_protection"],
                               extra_ignoreip=bool(settings["ignoreip"]))
        files[jail.path] = text.encode()
    files[plan.filter_path] = FILTER_SOURCE.read_bytes()
    return files
