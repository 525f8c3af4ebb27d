"""`fvs registry duplicates list|resolve` and `fvs registry dedup-scan` (issue 9)."""

from __future__ import annotations

import argparse
import contextlib
import csv
import sys
import time
from typing import Any

from fvs.cli.common import EXIT_REFUSED, add_data_dir, local_operator, print_json, settings


def register_registry(rsub: Any) -> None:
    dup = rsub.add_parser("duplicates", help="duplicate cases kept for adjudication")
    dsub = dup.add_subparsers(dest="duplicates_command", required=True)
    ls = dsub.add_parser("list", help="duplicate cases, oldest first")
    ls.add_argument(
        "--status",
        default="open",
        choices=["open", "same_person", "different_people", "all"],
    )
    ls.add_argument("--limit", type=int, default=100)
    ls.add_argument("--json", action="store_true")
    add_data_dir(ls)
    ls.set_defaults(func=_list)
    res = dsub.add_parser(
        "resolve",
        help="adjudicate a case: same person (for the registry to act on) or different "
        "people (the pair is never raised again)",
    )
    res.add_argument("case_id", type=int)
    res.add_argument("--verdict", required=True, choices=["same-person", "different-people"])
    res.add_argument("--note", default="")
    res.add_argument("--json", action="store_true")
    add_data_dir(res)
    res.set_defaults(func=_resolve)

    reindex = rsub.add_parser(
        "reindex",
        help="rebuild the template index and the duplicate search index from the store and "
        "write them as the snapshot the next server start loads",
    )
    reindex.add_argument("--pack", help="model pack whose templates are indexed")
    add_data_dir(reindex)
    reindex.set_defaults(func=_reindex)

    scan = rsub.add_parser(
        "dedup-scan", help="find duplicate pairs among every enrolled template (a report)"
    )
    scan.add_argument("--k", type=int, default=5, help="neighbours searched per template")
    scan.add_argument("--max-fmr", type=float, help="duplicate threshold (default dedup.max_fmr)")
    scan.add_argument("--out", help="report file (default: stdout)")
    scan.add_argument("--format", choices=["csv", "json"], default="csv")
    scan.add_argument(
        "--open-cases",
        action="store_true",
        help="also open a case (source 'scan') for each pair without an open one",
    )
    scan.add_argument("--pack", help="model pack whose templates are scanned")
    scan.add_argument("--no-progress", action="store_true")
    add_data_dir(scan)
    scan.set_defaults(func=_scan)


def _list(args: argparse.Namespace) -> int:
    from fvs.store.duplicates import DuplicateCases
    from fvs.store.factory import open_registry

    store = open_registry(settings(store__data_dir=args.data_dir).store)
    try:
        status = None if args.status == "all" else args.status
        cases = DuplicateCases(store.db).list(status, args.limit)
    finally:
        store.close()
    if args.json:
        print_json([c.as_dict() for c in cases])
        return 0
    if not cases:
        print(f"no {'' if args.status == 'all' else args.status + ' '}duplicate cases")
    for c in cases:
        print(
            f"case {c.case_id} [{c.status}] {c.source} {c.opened_at:%Y-%m-%d %H:%M}Z: "
            f"{c.citizen_id} v{c.template_version} ~ {c.candidate_id} v{c.candidate_version} "
            f"score {c.score:.1f} (cosine {c.similarity:.4f}, {c.candidates} candidate(s))"
            + (f"; {c.resolved_by}: {c.note}" if c.resolved_by else "")
        )
    return 0


def _resolve(args: argparse.Namespace) -> int:
    from fvs.cli.admin import open_admin
    from fvs.store.duplicates import DuplicateCases
    from fvs.store.factory import open_registry

    verdict = args.verdict.replace("-", "_")
    operator = local_operator()
    store = open_registry(settings(store__data_dir=args.data_dir).store)
    admin = open_admin(args.data_dir)
    try:
        cases = DuplicateCases(store.db)
        case = admin.audited(
            operator,
            "ResolveDuplicate",
            {"case": str(args.case_id), "verdict": verdict},
            lambda: cases.resolve(
                args.case_id, verdict, f"operator/{operator.local_operator}", args.note
            ),
        )
    finally:
        admin.gate.close()
        store.close()
    if args.json:
        print_json(case.as_dict())
    else:
        print(
            f"case {case.case_id} resolved as {verdict.replace('_', ' ')}"
            + (
                f": {case.citizen_id} and {case.candidate_id} will not be raised again"
                if verdict == "different_people"
                else ""
            )
        )
    return 0


def _pack(s: Any) -> tuple[Any, Any]:
    """(the configured pack's manifest, its calibrated score mapping), without its models."""
    from fvs.pipeline.pipeline import calibration_path
    from fvs.pipeline.score import load_calibration
    from fvs.runtime.manifest import load_manifest

    manifest, _ = load_manifest(s.model.models_dir, s.model.pack)
    path = s.score.calibration or calibration_path(s.model)
    return manifest, load_calibration(path, manifest.recognizer.sha256)


def _reindex(args: argparse.Namespace) -> int:
    from fvs.dedup.search import DuplicateSearch
    from fvs.store.factory import open_registry, open_snapshots

    s = settings(store__data_dir=args.data_dir, model__pack=args.pack)
    manifest, mapping = _pack(s)
    start = time.perf_counter()
    store = open_registry(s.store)
    try:
        snapshots = open_snapshots(s.store, store)
        if snapshots is None:
            print(
                "error: index snapshots are off (store.index_snapshot) or the store has no "
                "template key: nothing to write",
                file=sys.stderr,
            )
            return EXIT_REFUSED
        model_id, dim = manifest.model_id, manifest.recognizer.embedding_size
        index = snapshots.build(model_id, dim, s.store.template_encoding)
        snapshots.index = index
        kind = "none (dedup.mode = off)"
        if s.dedup.mode != "off":
            dedup = DuplicateSearch(s.dedup, None)
            dedup.attach(index, mapping)
            if not dedup.wait_ready(None) or dedup.index is None:
                print(f"error: the search index failed: {dedup.failure}", file=sys.stderr)
                return EXIT_REFUSED
            snapshots.companions = dedup.companions
            kind = dedup.index.kind
        if not snapshots.save():
            print("error: the snapshot was not written (see the log)", file=sys.stderr)
            return EXIT_REFUSED
        path = snapshots.path(model_id, s.store.template_encoding)
    finally:
        store.close()
    print(
        f"reindexed {len(index)} templates of {model_id} (search index: {kind}) into {path} "
        f"in {time.perf_counter() - start:.1f} s; servers load it at their next start"
    )
    return 0


def _scan(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from fvs.dedup.rule import DuplicateRule
    from fvs.dedup.scan import scan
    from fvs.dedup.search import params_of
    from fvs.store.duplicates import DuplicateCases
    from fvs.store.factory import open_registry
    from fvs.store.index import TemplateIndex
    from fvs.store.search import SearchIndex

    s = settings(store__data_dir=args.data_dir, model__pack=args.pack)
    manifest, mapping = _pack(s)
    rule = DuplicateRule.from_mapping(mapping, args.max_fmr or s.dedup.max_fmr)
    start = time.perf_counter()
    store = open_registry(s.store)
    try:
        cases = DuplicateCases(store.db)
        templates = TemplateIndex.from_store(
            store,
            manifest.model_id,
            manifest.recognizer.embedding_size,
            s.store.template_encoding,
        )
        index = SearchIndex(templates, params_of(s.dedup)).build()
        bar = tqdm(
            total=templates.rows_used,
            unit=" templates",
            unit_scale=True,
            disable=args.no_progress,
            file=sys.stderr,
        )
        try:
            pairs = scan(index, rule, args.k, cases.distinct_pairs(), bar.update)
        finally:
            bar.close()
        opened = 0
        if args.open_cases:
            already = cases.open_pairs()
            for p in pairs:
                if (p.citizen_a, p.citizen_b) in already:
                    continue
                cases.open_case(
                    "scan",
                    p.citizen_a,
                    p.version_a,
                    p.citizen_b,
                    p.version_b,
                    p.similarity,
                    p.score,
                    1,
                    manifest.model_id,
                )
                opened += 1
    finally:
        store.close()
    rows = [p.as_dict() for p in pairs]
    with contextlib.ExitStack() as stack:
        out = (
            stack.enter_context(open(args.out, "w", encoding="utf-8", newline=""))
            if args.out
            else sys.stdout
        )
        if args.format == "json":
            import json

            json.dump(
                {
                    "model": manifest.model_id,
                    "max_fmr": rule.max_fmr,
                    "templates": len(templates),
                    "index": index.kind,
                    "pairs": rows,
                },
                out,
                indent=2,
            )
            out.write("\n")
        else:
            fields = ["citizen_a", "citizen_b", "version_a", "version_b", "similarity", "score"]
            writer = csv.DictWriter(out, fieldnames=fields)
            writer.writeheader()
            writer.writerows(rows)
    print(
        f"dedup-scan: {len(pairs)} duplicate pair(s) among {len(templates)} templates "
        f"({index.kind} index, max_fmr {rule.max_fmr:g}) in {time.perf_counter() - start:.1f} s"
        + (f"; {opened} case(s) opened" if args.open_cases else ""),
        file=sys.stderr,
    )
    return EXIT_REFUSED if pairs else 0
