"""The `fvs` command line. Each submodule registers its commands; handlers import lazily so
that `fvs --help` and client commands start fast."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from fvs.cli import admin, client, common, evaluate, local, store

EXIT_OK = 0


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="fvs", description="Face Verification Service")
    p.add_argument("--log-level", default="INFO", help="DEBUG, INFO, WARNING, ERROR")
    sub = p.add_subparsers(dest="command", required=True)
    local.register_serve(sub)
    client.register(sub)
    local.register(sub)
    admin.register(sub)
    store.register_db(sub)
    evaluate.register(sub)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    common.apply_store_args(args)
    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    from fvs.errors import ConfigError, FvsError

    try:
        code: int = args.func(args)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return common.EXIT_USAGE
    except FvsError as exc:
        print(f"error: {exc.code.value}: {exc.message}", file=sys.stderr)
        return common.exit_code_for(exc.code)
    return code
