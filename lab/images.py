"""Build the lab's images without a container registry.

Base images come from Debian's packages (debootstrap + `docker import`), or from `debian:<release>`
when the engine already has it. Variant images are `docker build`s on top, cached by a hash of what
goes into them: a second call builds nothing.
"""

import hashlib
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor

import docker
from docker.errors import ImageNotFound

from . import config

IMAGE_REPO = config.IMAGES  # images are pvelab/<name>:latest, whatever the namespace
HASH_LABEL = "pvelab.hash"


def image_tag(name):
    return f"{IMAGE_REPO}/{name}:latest"


def _log(msg):
    print(f"[lab] {msg}", file=sys.stderr, flush=True)


def _hash(*parts):
    h = hashlib.sha256()
    for part in parts:
        h.update(part if isinstance(part, bytes) else str(part).encode())
    return h.hexdigest()[:16]


def _existing_hash(client, tag):
    try:
        return (client.images.get(tag).labels or {}).get(HASH_LABEL)
    except ImageNotFound:
        return None


def _base_hash(release):
    return _hash(release, ",".join(config.BASE_PACKAGES))


def ensure_base(client, release):
    """`pvelab/base-<release>`: systemd, sshd, firewall tools, python3; built once, then cached."""
    tag = image_tag(f"base-{release}")
    want = _base_hash(release)
    if _existing_hash(client, tag) == want:
        return tag
    start = time.monotonic()
    try:
        client.images.get(f"debian:{release}")
        from_registry = True
    except ImageNotFound:
        from_registry = False
    if from_registry:
        _log(f"building {tag} from debian:{release}")
        dockerfile = (
            f"FROM debian:{release}\n"
            "RUN apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y "
            "--no-install-recommends " + " ".join(config.BASE_PACKAGES) + "\n"
            'CMD ["/sbin/init"]\n'
        )
        with tempfile.TemporaryDirectory() as ctx:
            with open(f"{ctx}/Dockerfile", "w") as f:
                f.write(dockerfile)
            client.images.build(
                path=ctx, tag=tag, labels={config.LABEL: "1", HASH_LABEL: want}, rm=True
            )
    else:
        if not shutil.which("debootstrap"):
            raise RuntimeError(
                "debootstrap is missing: run scripts/ensure-docker.sh as root, or "
                "`apt-get install debootstrap`"
            )
        _log(f"building {tag} with debootstrap from {config.MIRROR} (about a minute)")
        with tempfile.TemporaryDirectory(prefix=f"pvelab-{release}-", dir="/var/tmp") as rootfs:
            subprocess.run(
                [
                    "debootstrap",
                    "--variant=minbase",
                    "--include=" + ",".join(config.BASE_PACKAGES),
                    release,
                    rootfs,
                    config.MIRROR,
                ],
                check=True,
                stdout=subprocess.DEVNULL,
            )
            # Host keys are made per container at boot (see context/ssh-hostkeys.conf).
            subprocess.run(
                f"rm -f {rootfs}/etc/ssh/ssh_host_* && rm -rf {rootfs}/var/cache/apt/archives/*.deb",
                shell=True,
                check=True,
            )
            subprocess.run(
                f"tar -C {rootfs} -c . | docker import -c 'CMD [\"/sbin/init\"]' "
                f"-c 'LABEL {config.LABEL}=1 {HASH_LABEL}={want}' - {tag}",
                shell=True,
                check=True,
                stdout=subprocess.DEVNULL,
            )
    _log(f"{tag} ready in {time.monotonic() - start:.0f}s")
    return tag


# name: (Dockerfile in context/, base release or parent image name, build arguments)
IMAGES = {
    "pve8": ("Dockerfile.node", "base-bookworm", {"PRODUCTS": "pve"}),
    "pve9": ("Dockerfile.node", "base-trixie", {"PRODUCTS": "pve"}),
    "legacy": ("Dockerfile.legacy", "pve8", {}),
    "pbs": ("Dockerfile.node", "base-bookworm", {"PRODUCTS": "pbs"}),
    "pmg": ("Dockerfile.node", "base-bookworm", {"PRODUCTS": "pmg"}),
    "pvepbs": ("Dockerfile.node", "base-bookworm", {"PRODUCTS": "pve pbs"}),
    "pdm": ("Dockerfile.node", "base-trixie", {"PRODUCTS": "pdm"}),
    # Debian's Prometheus and Alertmanager downloaded, not installed: monitoring.py installs them
    "mon": (
        "Dockerfile.node",
        "base-bookworm",
        {"PRODUCTS": "", "PREFETCH": "prometheus prometheus-alertmanager"},
    ),
    "upgrade": ("Dockerfile.upgrade", "pve8", {}),
    # Debian's reverse proxies downloaded, not installed: the proxy test installs one per node
    "proxy": (
        "Dockerfile.node",
        "base-bookworm",
        {"PRODUCTS": "pve", "PREFETCH": "nginx haproxy caddy"},
    ),
    "attacker": ("Dockerfile.attacker", "base-bookworm", {}),
}


def _context_hash():
    parts = []
    for path in sorted(config.CONTEXT.rglob("*")):
        if path.is_file():
            parts += [path.name, path.read_bytes()]
    return _hash(*parts)


def ensure_image(client, name, _built=None):
    """Build image `name` (and what it stands on) unless it is already current."""
    dockerfile, parent, args = IMAGES[name]
    if parent.startswith("base-"):
        parent_tag = ensure_base(client, parent[len("base-") :])
    else:
        parent_tag = ensure_image(client, parent)
    parent_id = client.images.get(parent_tag).id
    tag = image_tag(name)
    want = _hash(name, parent_id, _context_hash(), sorted(args.items()))
    if _existing_hash(client, tag) == want:
        return tag
    start = time.monotonic()
    _log(f"building {tag}")
    client.images.build(
        path=str(config.CONTEXT),
        dockerfile=dockerfile,
        tag=tag,
        rm=True,
        forcerm=True,
        buildargs={"BASE": parent_tag, **args},
        labels={config.LABEL: "1", HASH_LABEL: want},
    )
    _log(f"{tag} ready in {time.monotonic() - start:.0f}s")
    return tag


def ensure_images(names, client=None):
    """Build every image in `names`; the two Debian releases' bases are built in parallel."""
    client = client or docker.from_env()
    releases = sorted(
        {IMAGES[n][1][len("base-") :] for n in _closure(names) if IMAGES[n][1].startswith("base-")}
    )
    with ThreadPoolExecutor(max_workers=2) as pool:
        list(pool.map(lambda r: ensure_base(client, r), releases))
    return {name: ensure_image(client, name) for name in names}


def _closure(names):
    seen = []
    for name in names:
        while name in IMAGES and name not in seen:
            seen.append(name)
            parent = IMAGES[name][1]
            name = parent
    return seen
