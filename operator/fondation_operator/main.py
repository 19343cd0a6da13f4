"""`fondation operator`: run the operator until SIGTERM."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from collections.abc import Sequence

import kopf

from fondation_operator import settings as settings_mod
from fondation_operator.kube import config as kube_config
from fondation_operator.runtime import Operator


def build_parser(parser: argparse.ArgumentParser | None = None) -> argparse.ArgumentParser:
    parser = parser or argparse.ArgumentParser(
        prog="fondation operator", description="Run the operator until SIGTERM."
    )
    parser.add_argument("--kubeconfig", help="kubeconfig file (default: $KUBECONFIG, in-cluster)")
    parser.add_argument("--context", help="kubeconfig context")
    parser.add_argument(
        "--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"]
    )
    settings_mod.add_arguments(parser)
    return parser


def run(args: argparse.Namespace) -> int:
    logging.basicConfig(
        level=args.log_level,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    logging.getLogger("kopf").setLevel(max(logging.WARNING, logging.getLevelName(args.log_level)))
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
    try:
        settings = settings_mod.load(args)
        connection = kube_config.load(args.kubeconfig, args.context)
        # Builds the Convex bridge too, which validates the CONVEX_* variables.
        operator = Operator(settings, connection)
    except (settings_mod.ConfigurationError, kube_config.ConfigError) as exc:
        print(f"fondation operator: {exc}", file=sys.stderr)
        return 2
    asyncio.run(
        kopf.operator(
            registry=operator.registry(),
            standalone=True,
            clusterwide=not settings.namespaces,
            namespaces=settings.namespaces,
        )
    )
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    return run(build_parser().parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
