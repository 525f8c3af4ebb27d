"""The `fvs` command line. Each submodule registers its commands; handlers import lazily so
that `fvs --help` and client commands start fast."""

from __future__ import annotations

import argparse
import os
from collections.abc import Sequence

from fvs.cli import admin, client, common, console, evaluate, local, store

EXIT_OK = 0


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="fvs", description="Face Verification Service")
    p.add_argument("--log-level", default="INFO", help="DEBUG, INFO, WARNING, ERROR")
    p.add_argument(
        "--log-format",
        choices=["text", "json"],
        default=os.environ.get("FVS_LOG_FORMAT", "text"),
        help="log lines as text or one JSON object each, with the call's request id and "
        "agency (default $FVS_LOG_FORMAT or text)",
    )
    sub = p.add_subparsers(dest="command", required=True)
    local.register_serve(sub)
    client.register(sub)
    local.register(sub)
    admin.register(sub)
    store.register_db(sub)
    evaluate.register(sub)
    console.register(sub)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    common.apply_store_args(args)
    from fvs.observability.logs import configure

    configure(args.log_level, args.log_format)
    from fvs.errors import ConfigError, FvsError

    try:
        code: int = args.func(args)
    except ConfigError as exc:
        common.report_error(args, "CONFIG_ERROR", "", str(exc), {})
        return common.EXIT_USAGE
    except FvsError as exc:
        from fvs.api.errors import grpc_code

        common.report_error(
            args, grpc_code(exc.code).name, exc.code.value, exc.message, exc.metadata
        )
        return common.exit_code_for(exc.code)
    return code
