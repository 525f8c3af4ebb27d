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


# --store and --template-key-file of the command being run (set by fvs.cli.main), applied by
# every settings() call: each command that touches state reads them from there.
STORE_OVERRIDES: dict[str, Any] = {}


def settings(**overrides: Any) -> Settings:
    """Settings from the environment, with the command line's overrides (None = not given)."""
    from fvs.config import Settings

    result = Settings()
    for dotted, value in {**STORE_OVERRIDES, **overrides}.items():
        if value is None:
            continue
        section, field = dotted.split("__")
        setattr(getattr(result, section), field, value)
    return result


def add_data_dir(cmd: argparse.ArgumentParser) -> None:
    """--data-dir (local files) and --store (where the state lives), for every command that
    touches state."""
    cmd.add_argument(
        "--data-dir",
        type=Path,
        help="local files: keys, caches, and the SQLite databases when --store names no "
        "database (default $FVS_STORE__DATA_DIR or ./fvs-data)",
    )
    cmd.add_argument(
        "--store",
        dest="store_url",
        metavar="URL",
        help="where the registry, access rules and audit trail live: sqlite:///DIR or "
        "postgresql://USER@HOST:PORT/DB (default $FVS_STORE__URL, else the SQLite files in "
        "--data-dir)",
    )
    cmd.add_argument(
        "--template-key-file",
        type=Path,
        metavar="PATH",
        help="the key file templates are sealed with (default $FVS_STORE__TEMPLATE_KEY_FILE, "
        "else DATA_DIR/keys/template.key)",
    )


def apply_store_args(args: argparse.Namespace) -> None:
    STORE_OVERRIDES.clear()
    STORE_OVERRIDES["store__url"] = getattr(args, "store_url", None)
    STORE_OVERRIDES["store__template_key_file"] = getattr(args, "template_key_file", None)


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
