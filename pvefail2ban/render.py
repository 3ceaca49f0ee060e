"""The bytes of every file the deploy puts on a node, rendered locally from the package's own
templates/ and files/ (found from this module's path, so a wheel works from any folder)."""

from pathlib import Path

import jinja2

from .scripts.nodelib import EXPECTED, NO_LOG, expected_text
from .share import PEERS_BAN

# NO_LOG's one line, read once by each jail at its start and matched by no filter
NO_LOG_TEXT = (
    b"# Managed by pve-fail2ban (pyinfra deploy): the last log file of each of its jails that\n"
    b"# reads files; it never gets a line, and fail2ban starts where a jail's own log is missing.\n"
)

HERE = Path(__file__).resolve().parent
TEMPLATES = HERE / "templates"
FILES = HERE / "files"
FILTERS = FILES / "etc/fail2ban/filter.d"  # our filters, by file name
SHARE_ACTION_SOURCE = FILES / "etc/fail2ban/action.d/pve-fail2ban-share.conf"
EVENTS_ACTION_SOURCE = FILES / "etc/fail2ban/action.d/pve-fail2ban-events.conf"
OFF_TEMPLATE = "etc/fail2ban/jail.d/_off.j2"
PRODUCT_TEMPLATE = "etc/fail2ban/jail.d/_product.local.j2"

_env = jinja2.Environment(
    loader=jinja2.FileSystemLoader(str(TEMPLATES)),
    undefined=jinja2.StrictUndefined,
    keep_trailing_newline=True,
    autoescape=False,
)


def render_files(plan, settings):
    """{path on the node: bytes} for this node's plan."""
    files = {}
    for jail in plan.jails:
        # a product's jail: one template for all (products.py says what it protects)
        template = _env.get_template(
            PRODUCT_TEMPLATE if jail.about else jail.path.lstrip("/") + ".j2"
        )
        text = template.render(
            jail=jail,
            plan=plan,
            bantime_increment=settings["bantime_increment"],
            lockout_protection=settings["lockout_protection"],
            extra_ignoreip=bool(settings["ignoreip"]),
            no_log=NO_LOG,
            peers_ban=PEERS_BAN,
        )
        files[jail.path] = text.encode()
        if jail.backend == "file":
            files[NO_LOG] = NO_LOG_TEXT
    # the record every judge of this node reads (nodelib.EXPECTED)
    files[EXPECTED] = expected_text([jail.name for jail in plan.jails], plan.off).encode()
    for name, (path, why) in plan.off.items():
        files[path] = _env.get_template(OFF_TEMPLATE).render(name=name, why=why).encode()
    for path, source in plan.filters.items():
        files[path] = (FILTERS / source).read_bytes()
    for wanted, source in ((plan.share, SHARE_ACTION_SOURCE), (plan.events, EVENTS_ACTION_SOURCE)):
        if wanted:
            files["/" + str(source.relative_to(FILES))] = source.read_bytes()
    return files
