"""`fvs db migrate|status` and the registry's bulk and key commands: seed, new-key, rotate-key."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

from fvs.cli.common import EXIT_REFUSED, EXIT_USAGE, add_data_dir, print_json, settings


def register_db(sub: Any) -> None:
    db = sub.add_parser("db", help="the schema of the databases state lives in")
    dsub = db.add_subparsers(dest="db_command", required=True)
    mig = dsub.add_parser("migrate", help="bring every component's schema to this FVS's version")
    add_data_dir(mig)
    mig.set_defaults(func=_migrate)
    st = dsub.add_parser("status", help="each component's schema version (exit 1 if not current)")
    add_data_dir(st)
    st.add_argument("--json", action="store_true")
    st.set_defaults(func=_status)


def register_registry(rsub: Any) -> None:
    seed = rsub.add_parser("seed", help="generate deterministic synthetic citizens")
    seed.add_argument("--count", type=int, required=True)
    seed.add_argument("--seed", type=int, default=0)
    seed.add_argument(
        "--with-templates",
        action="store_true",
        help="also store a random unit-vector template each (scale tests only)",
    )
    seed.add_argument("--chunk", type=int, default=50_000, help="citizens per transaction")
    seed.add_argument(
        "--workers",
        type=int,
        default=2,
        help="processes that build rows while this one writes (0: none, build in turn); "
        "on 2 cores 2 beat 1 (10^5: 11.4 s against 15.0 s)",
    )
    seed.add_argument("--no-progress", action="store_true")
    add_data_dir(seed)
    seed.add_argument("--pack", help="model pack whose id and size the templates take")
    seed.set_defaults(func=_seed)

    new_key = rsub.add_parser(
        "new-key", help="add a fresh template key to a key file (created 0600 if missing)"
    )
    new_key.add_argument("--out", type=Path, required=True)
    new_key.set_defaults(func=_new_key)

    rotate = rsub.add_parser(
        "rotate-key",
        help="re-seal every template under the key file's newest key, online",
    )
    add_data_dir(rotate)
    rotate.set_defaults(func=_rotate)


def _each_component(data_dir: Path | None) -> list[tuple[str, Any, Any]]:
    """(component, its migrations, its open database) for every component."""
    from fvs.store.factory import open_database
    from fvs.store.migrate import components

    s = settings(store__data_dir=data_dir)
    location = s.store.location()
    out = []
    for name, migs in components().items():
        if location.backend not in migs:
            continue
        out.append((name, migs, open_database(location, name, pool_size=2)))
    return out


def _migrate(args: argparse.Namespace) -> int:
    from fvs.store.migrate import migrate

    for name, migs, db in _each_component(args.data_dir):
        try:
            before, after = migrate(db, name, migs)
        finally:
            db.close()
        if before == after:
            print(f"{name}: schema version {after} in {db.where}, current (nothing to do)")
        else:
            print(f"{name}: schema version {before} -> {after} in {db.where}")
    return 0


def _status(args: argparse.Namespace) -> int:
    from fvs.store.migrate import status

    rows = []
    for name, migs, db in _each_component(args.data_dir):
        try:
            rows.append(status(db, name, migs))
        finally:
            db.close()
    if args.json:
        print_json(
            [
                {
                    "component": r.component,
                    "where": r.where,
                    "version": r.version,
                    "latest": r.latest,
                    "state": r.state,
                }
                for r in rows
            ]
        )
    else:
        for r in rows:
            print(f"{r.component}: version {r.version} of {r.latest} ({r.state}) in {r.where}")
    return 0 if all(r.state == "current" for r in rows) else EXIT_REFUSED


def _seed(args: argparse.Namespace) -> int:
    from fvs.digitalid.backends import open_card_store
    from fvs.runtime.manifest import load_manifest
    from fvs.store.factory import open_registry
    from fvs.store.seeding import SeedJob, seed_chunks

    if args.count < 1 or args.chunk < 1 or args.workers < 0:
        print("error: --count and --chunk must be at least 1, --workers 0", file=sys.stderr)
        return EXIT_USAGE
    s = settings(store__data_dir=args.data_dir, model__pack=args.pack)
    start = time.perf_counter()
    store = open_registry(s.store)
    model_id, dim = "", 0
    if args.with_templates:
        manifest, _ = load_manifest(s.model.models_dir, s.model.pack)
        model_id, dim = manifest.model_id, manifest.recognizer.embedding_size
    job = SeedJob(
        count=args.count,
        seed=args.seed,
        chunk=args.chunk,
        model_id=model_id,
        dim=dim,
        encoding=store.encoding,
        key_file=store.cipher.path if store.cipher is not None else None,
    )
    bar = _progress(args.count, "citizens", disable=args.no_progress)
    inserted = cards = 0
    card_store = open_card_store(s.store.location())
    try:
        for chunk in seed_chunks(job, args.workers):
            inserted += store.add_bulk(chunk.rows)
            cards += card_store.add_card_rows(chunk.cards)
            bar.update(chunk.size)
        total = store.count_citizens()
    finally:
        bar.close()
        card_store.close()
        store.close()
    print(
        f"seeded {inserted} new synthetic citizens (of {args.count}; {total} in "
        f"{s.store.location().redacted()}) in {time.perf_counter() - start:.1f} s"
        + (f", templates for model {model_id} ({s.store.template_encoding})" if model_id else "")
        + f"; {cards} new Digital ID cards"
    )
    return 0


def _progress(total: int, unit: str, disable: bool) -> Any:
    from tqdm import tqdm

    return tqdm(total=total, unit=f" {unit}", unit_scale=True, disable=disable, file=sys.stderr)


def _new_key(args: argparse.Namespace) -> int:
    from fvs.store.crypto import write_new_key

    existed = args.out.exists()
    kid = write_new_key(args.out)
    print(
        f"{'added' if existed else 'created'} template key {kid} in {args.out} (mode 0600); "
        + (
            "it is now the current key: give the file to every server, then run "
            "`fvs registry rotate-key` to re-seal the older templates"
            if existed
            else "give this same file to every server (--template-key-file)"
        )
    )
    return 0


def _rotate(args: argparse.Namespace) -> int:
    from fvs.store.factory import open_registry

    s = settings(store__data_dir=args.data_dir)
    store = open_registry(s.store)
    start = time.perf_counter()
    bar = _progress(0, "templates", disable=False)
    try:
        assert store.cipher is not None
        done, failed = store.rotate(progress=bar.update)
        current = store.cipher.current
    finally:
        bar.close()
        store.close()
    print(
        f"re-sealed {done} templates under key {current} in {time.perf_counter() - start:.1f} s"
        + (f"; {failed} failed their integrity check and were left as they are" if failed else "")
    )
    return EXIT_REFUSED if failed else 0
