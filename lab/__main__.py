"""Lab control: python -m lab {build,up,down,status} (see docs/lab-and-tests.md)."""

import argparse
import sys
import time

import docker.errors

from . import config
from .images import ensure_images
from .lab import Lab, LabError, plan_nodes


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m lab", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("build", help="build (or reuse) every lab image")
    up = sub.add_parser("up", help="start a fresh lab and write its pyinfra inventory")
    up.add_argument("--nodes", type=int, help=f"number of nodes, 1..{config.MAX_NODES} (default 3)")
    up.add_argument(
        "--variants", help=f"comma-separated node variants, from: {', '.join(config.VARIANTS)}"
    )
    sub.add_parser("down", help="remove every lab container and network")
    sub.add_parser("status", help="list the running lab")
    args = parser.parse_args(argv)
    try:
        if args.command == "build":
            ensure_images(list(config.VARIANTS) + ["attacker"])
            return 0
        if args.command == "up":
            plan_nodes(args.nodes, args.variants)  # bad input is refused before anything is touched
        lab = Lab()
        if args.command == "up":
            start = time.monotonic()
            nodes = lab.up(args.nodes, args.variants)
            print(
                f"lab up in {time.monotonic() - start:.1f}s: {len(nodes)} nodes, attacker {config.ATTACKER_IP}"
            )
        elif args.command == "down":
            lab.down()
            print("lab down")
            return 0
        for node in lab.nodes():
            print(f"  {node.name:8} {node.ip:15} {node.variant:7} {node.container.status}")
        print(f"inventory: {lab.inventory_path}")
        return 0
    except (LabError, docker.errors.DockerException) as error:
        print(f"lab: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
