"""Helpers shared by the command modules."""

from __future__ import annotations

import argparse
import getpass
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from fvs.access.model import Caller
    from fvs.config import Settings
    from fvs.errors import ErrorCode

DEFAULT_SERVER = "127.0.0.1:50051"
EXIT_REFUSED = 1
EXIT_USAGE = 2
EXIT_UNAVAILABLE = 3


def exit_code_for(code: ErrorCode) -> int:
    from fvs.errors import Kind

    return EXIT_UNAVAILABLE if code.kind in {Kind.UNAVAILABLE, Kind.INTERNAL} else EXIT_REFUSED


def settings(**overrides: Any) -> Settings:
    """Settings from the environment, with the command line's overrides (None = not given)."""
    from fvs.config import Settings

    result = Settings()
    for dotted, value in overrides.items():
        if value is None:
            continue
        section, field = dotted.split("__")
        setattr(getattr(result, section), field, value)
    return result


def add_data_dir(cmd: argparse.ArgumentParser) -> None:
    cmd.add_argument(
        "--data-dir", type=Path, help="data directory (default $FVS_STORE__DATA_DIR or ./fvs-data)"
    )


def report_error(
    args: argparse.Namespace, code: str, reason: str, message: str, metadata: dict[str, str]
) -> None:
    """A refusal for the user: one JSON object on stdout under --json, else a line (and the
    ErrorInfo metadata, one ``key=value`` each) on stderr."""
    if getattr(args, "json", False):
        error = {"code": code, "reason": reason, "message": message, "metadata": metadata}
        print_json({"error": error})
        return
    print(f"error: {reason or code} ({code}): {message}", file=sys.stderr)
    for key, value in sorted(metadata.items()):
        print(f"  {key}={value}", file=sys.stderr)


def print_json(data: Any) -> None:
    print(json.dumps(data, ensure_ascii=False, indent=2, default=str))


def local_operator() -> Caller:
    """The caller an admin command on this machine acts as (audited by OS user name)."""
    from fvs.access.model import Caller

    return Caller(local_operator=getpass.getuser(), peer="local")
