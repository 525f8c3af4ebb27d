"""`fvs eval` and `fvs calibrate` for ML engineers."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from fvs.cli.common import EXIT_USAGE, settings


def _common(cmd: argparse.ArgumentParser, dataset_optional: bool = False) -> None:
    cmd.add_argument(
        "dataset",
        type=Path,
        nargs="?" if dataset_optional else None,
        help="folder of identity subfolders of photos (with a labels CSV as --groups: the "
        "folder its file paths are relative to)",
    )
    cmd.add_argument(
        "--groups",
        type=Path,
        help="identity<TAB>group file (unlisted identities: --default-group), or a labels CSV "
        "of single photos with a 'file' column (impostor pairs only)",
    )
    cmd.add_argument("--group-column", default="race", help="group column of a labels CSV")
    cmd.add_argument("--default-group", default="other", help="group of unlisted identities")
    cmd.add_argument("--errata", type=Path, help="known-bad labels (LFW_ERRATA_files.tsv format)")
    cmd.add_argument(
        "--alias",
        action="append",
        default=[],
        metavar="NAME1=NAME2",
        help="two identity folders that are the same person (repeatable)",
    )
    cmd.add_argument(
        "--cache",
        type=Path,
        default=Path(".fvs-cache"),
        help="embedding cache folder (by file hash and model; default .fvs-cache)",
    )
    cmd.add_argument("--pack", help="model pack (default $FVS_MODEL__PACK or buffalo_sc)")
    cmd.add_argument(
        "--detector-size",
        type=int,
        action="append",
        help="fixed detector size(s) instead of sizing to the image",
    )
    cmd.add_argument("--no-progress", action="store_true")


def register(sub: Any) -> None:
    ev = sub.add_parser("eval", help="accuracy on a dataset: JSON report and ROC/DET plots")
    _common(ev)
    ev.add_argument("--pairs", type=Path, help="LFW-format pairs file (10-fold accuracy)")
    ev.add_argument(
        "--impostors",
        default="all",
        help="'all' cross-identity pairs, or a number to sample (with --seed)",
    )
    ev.add_argument("--seed", type=int, default=0)
    ev.add_argument(
        "--template-encoding",
        choices=["f32", "f16", "i8"],
        default="f32",
        help="score embeddings as the registry stores templates (f16, i8: compact; default "
        "f32, as computed)",
    )
    ev.add_argument("--name", help="dataset name for the plots' titles")
    ev.add_argument(
        "--calibration",
        type=Path,
        help="score the groups with this calibration file (default: the pack's)",
    )
    ev.add_argument(
        "--out",
        type=Path,
        default=Path("eval-report"),
        help="folder for report.json, roc.png, det.png, scores.png",
    )
    ev.set_defaults(func=_eval)

    dd = sub.add_parser(
        "eval-dedup",
        help="1:N duplicate search accuracy (FNIR, FPIR against max_fmr): JSON and DET plot",
    )
    _common(dd)
    dd.add_argument("--seed", type=int, default=0, help="enrolment order")
    dd.add_argument(
        "--candidates", type=int, default=20, help="candidates kept per search (default 20)"
    )
    dd.add_argument(
        "--distractors",
        type=int,
        nargs="+",
        default=[0],
        metavar="N",
        help="also run with N distractor templates in the gallery first (e.g. 0 10000 "
        "100000 1000000; default 0)",
    )
    dd.add_argument(
        "--distractor-kind",
        choices=["isotropic", "face-like", "real"],
        action="append",
        help="isotropic: random unit vectors (the registry's synthetic templates); face-like: "
        "drawn from a Gaussian fitted to the embeddings of --distractor-photos; real: those "
        "embeddings themselves, at most as many as there are (repeatable; default isotropic)",
    )
    dd.add_argument(
        "--distractor-photos",
        type=Path,
        metavar="DIR",
        help="photos of people not in DATASET for the face-like and real distractors (flat "
        "folder: each photo a person); never the evaluation set",
    )
    dd.add_argument(
        "--search-kind",
        choices=["auto", "flat", "pq", "ivf"],
        default="auto",
        help="SearchIndex kind (default auto, as the service)",
    )
    dd.add_argument("--name", help="dataset name for the plot's title")
    dd.add_argument(
        "--out",
        type=Path,
        default=Path("eval-report"),
        help="folder for dedup_report.json and dedup_det.png",
    )
    dd.set_defaults(func=_eval_dedup)

    cal = sub.add_parser(
        "calibrate",
        help="fit the FMR-anchored score mapping for a pack, or --check one per group",
    )
    _common(cal, dataset_optional=True)
    cal.add_argument(
        "--population",
        type=Path,
        metavar="DIR",
        help="calibrate on a deployment's own photos: photos directly in DIR are distinct "
        "people (impostor pairs need nothing more), subfolders are one person each",
    )
    cal.add_argument(
        "--region",
        help="also fit the region-keyed tables (fvs/pipeline/regions.py) for this group of "
        "--groups; the server then needs no group label",
    )
    cal.add_argument(
        "--check",
        action="store_true",
        help="do not fit: print the per-group table of --calibration (default: the pack's) "
        "on DATASET with --groups",
    )
    cal.add_argument("--calibration", type=Path, help="the calibration file --check measures")
    cal.add_argument("--report", type=Path, help="with --check: also write the JSON here")
    cal.add_argument(
        "--name", help="dataset name recorded in the calibration (default: the folder name)"
    )
    cal.add_argument(
        "--out", type=Path, help="calibration file (default models/<pack>.calibration.json)"
    )
    cal.add_argument(
        "--holdout-json",
        type=Path,
        help="also write the held-out-half check (fit on half the identities, "
        "measured on the other half) to this file",
    )
    cal.set_defaults(func=_calibrate)


def _options(args: argparse.Namespace) -> Any:
    from fvs.evaluation.report import EvalOptions

    aliases = []
    for item in args.alias:
        a, sep, b = item.partition("=")
        if not sep:
            raise SystemExit(f"error: --alias {item!r} must be NAME1=NAME2")
        aliases.append((a.strip(), b.strip()))
    impostors = getattr(args, "impostors", "all")
    if impostors != "all" and not str(impostors).isdigit():
        raise SystemExit("error: --impostors takes 'all' or a number")
    return EvalOptions(
        dataset=args.dataset,
        pairs=getattr(args, "pairs", None),
        errata=args.errata,
        aliases=tuple(aliases),
        impostors=impostors,
        seed=getattr(args, "seed", 0),
        cache=args.cache,
        progress=not args.no_progress,
        template_encoding=getattr(args, "template_encoding", "f32"),
        groups=args.groups,
        group_column=args.group_column,
        default_group=args.default_group,
        population=getattr(args, "population", None) is not None,
    )


def _evaluation(args: argparse.Namespace) -> Any:
    from fvs.evaluation.report import Evaluation
    from fvs.pipeline.pipeline import FacePipeline

    if getattr(args, "population", None) is not None:
        if args.dataset is not None:
            print("error: give DATASET or --population DIR, not both", file=sys.stderr)
            raise SystemExit(EXIT_USAGE)
        args.dataset = args.population
    if args.dataset is None or not args.dataset.is_dir():
        print(f"error: {args.dataset} is not a folder", file=sys.stderr)
        raise SystemExit(EXIT_USAGE)
    if args.groups is not None and not args.groups.is_file():
        print(f"error: {args.groups} is not a file", file=sys.stderr)
        raise SystemExit(EXIT_USAGE)
    s = settings(model__pack=args.pack)
    if args.detector_size:
        s.pipeline.detector_sizes = args.detector_size
    pipeline = FacePipeline.load(s.model, s.pipeline, s.quality, s.score)
    try:
        return Evaluation(pipeline, _options(args)), s
    except ValueError as exc:  # a malformed groups file
        print(f"error: {exc}", file=sys.stderr)
        raise SystemExit(EXIT_USAGE) from exc


def _fmt(value: Any, pct: bool = True) -> str:
    if value is None:
        return "n/a"
    return f"{100 * value:.2f} %" if pct else f"{value:.4f}"


def _eval(args: argparse.Namespace) -> int:
    from fvs.evaluation.groups import format_table, write_differential_plot
    from fvs.evaluation.report import write_plots, write_report

    evaluation, _ = _evaluation(args)
    report, genuine, impostor = evaluation.report()
    name = args.name or "/".join(args.dataset.resolve().parts[-2:])
    title = f"{report['model']} on {name}"
    table = None
    if args.groups is not None:
        mapping = _mapping(evaluation, args.calibration)
        if mapping is not None:
            report["groups"] = evaluation.groups(mapping)
            table = format_table(report["groups"])
    path = write_report(args.out, report)
    plots = (
        write_plots(args.out, genuine, impostor, title) if genuine.size and impostor.size else []
    )
    if "groups" in report:
        plots.append(write_differential_plot(args.out, report["groups"], title))
    fta = report["failure_to_acquire"]
    print(
        f"model {report['model']}  images {fta['images']}  failures to acquire "
        f"{fta['failed']} {fta['by_reason'] or ''}"
    )
    if "listed_pairs" in report:
        lp = report["listed_pairs"]
        print(
            f"listed pairs {lp['pairs']} ({lp['folds']} folds): accuracy "
            f"{_fmt(lp['accuracy']['mean'])} +- {_fmt(lp['accuracy']['std'])}, without errata "
            f"{_fmt(lp['accuracy_without_errata']['mean'])}; problems {len(lp['problems'])}"
        )
    gp = report["generated_pairs"]
    print(
        f"generated pairs: {gp['genuine_pairs']} genuine, {gp['impostor_pairs']} impostor; "
        f"EER {_fmt(gp.get('eer'))}  AUC {_fmt(gp.get('auc'), pct=False)}"
    )
    for point in gp.get("tar_at_fmr", []):
        print(
            f"  TAR at FMR {point['target_fmr']:.0e}: {_fmt(point['tar'])}"
            + (
                f" (95 % CI {_fmt(point['tar_ci'][0])}-{_fmt(point['tar_ci'][1])}, threshold "
                f"{point['threshold']:.4f})"
                if point["tar"] is not None
                else f" ({point.get('note', '')})"
            )
        )
    rows = gp.get("quality_gate_tradeoff", [])
    if rows:
        print(f"  {'quality rule':<34}{'FTA':>7}{'FTA rate':>10}{'TAR@1e-4 incl. FTA':>20}")
        for row in rows:
            print(
                f"  {row['rule']:<34}{row['fta_images']:>7}{_fmt(row['fta_rate']):>10}"
                f"{_fmt(row['tar_at_fmr_1e-4_including_fta']):>20}"
            )
    if table is not None:
        print(table)
    print(f"report {path}" + (f"; plots {', '.join(p.name for p in plots)}" if plots else ""))
    return 0


def _mapping(evaluation: Any, path: Path | None) -> Any:
    """The calibration to measure: ``path``, or the one loaded with the pack."""
    from fvs.errors import ConfigError
    from fvs.pipeline.score import load_calibration

    if path is None:
        if evaluation.pipeline.mapping is None:
            print(
                "error: the pack has no calibration to measure per group (give --calibration)",
                file=sys.stderr,
            )
        return evaluation.pipeline.mapping
    try:
        return load_calibration(path, evaluation.pipeline.info.recognizer_sha256)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        raise SystemExit(EXIT_USAGE) from exc


def _check(args: argparse.Namespace) -> int:
    from fvs.evaluation.groups import format_table

    evaluation, _ = _evaluation(args)
    mapping = _mapping(evaluation, args.calibration)
    if mapping is None:
        return EXIT_USAGE
    section = evaluation.groups(mapping)
    print(format_table(section))
    if args.report is not None:
        args.report.parent.mkdir(parents=True, exist_ok=True)
        args.report.write_text(json.dumps(section, indent=2, default=float) + "\n", "utf-8")
        print(f"report {args.report}")
    return 0


def _calibrate(args: argparse.Namespace) -> int:
    from fvs.pipeline.pipeline import calibration_path

    if args.check:
        return _check(args)
    if args.region is not None and args.groups is None:
        print("error: --region needs --groups", file=sys.stderr)
        return EXIT_USAGE
    evaluation, s = _evaluation(args)
    name = args.name or args.dataset.name
    if args.population is not None:
        name = f"population:{name}"
    try:
        calibration = evaluation.calibrate(name, region=args.region)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    out = args.out or calibration_path(s.model)
    out.write_text(json.dumps(calibration.model_dump(), indent=2) + "\n", encoding="utf-8")
    print(f"calibration {calibration.id} written to {out}")
    holdout = []
    if calibration.impostor_pairs >= 4 * 10**5 and (
        calibration.regions is None or args.holdout_json
    ):  # the held-out check of the global table (scripts/holdout_groups.py: per group)
        holdout = evaluation.holdout_check(name)
    print(
        f"{'score >=':>9} {'FMR <=':>9} {'cosine':>8} {'FNMR':>8}"
        + ("   held-out half: FMR      FNMR" if holdout else "")
    )
    for k, p in enumerate(calibration.table):
        if k % 4:
            continue
        fnmr = f"{100 * p.fnmr:.2f} %" if p.fnmr is not None else "n/a"
        extra = ""
        if holdout:
            h = holdout[k]
            held_fnmr = h["heldout_fnmr"]
            fnmr_text = f"{100 * held_fnmr:.2f} %" if held_fnmr is not None else "n/a"
            extra = f"   {h['heldout_fmr']:>13.1e} {fnmr_text:>10}"
        print(f"{p.percent:>8.0f}% {p.fmr:>9.0e} {p.cosine:>8.4f} {fnmr:>8}{extra}")
    if calibration.regions is not None:
        r = calibration.regions
        print(
            f"region-keyed tables ({r.region}: {r.effective_pairs['in-in']:,.0f} in-in, "
            f"{r.effective_pairs['in-out']:,.0f} in-out, {r.effective_pairs['out-out']:,.0f} "
            "out-out impostor pairs), similarity at:"
        )
        print(f"{'score >=':>9} {'FMR <=':>9}" + "".join(f"{n:>9}" for n in r.tables))
        for k, p in enumerate(calibration.table):
            if k % 4 == 0:
                print(
                    f"{p.percent:>8.0f}% {p.fmr:>9.0e}"
                    + "".join(f"{t[k]:>9.4f}" for t in r.tables.values())
                )
        for name, tail in r.tails.items():
            if tail is not None:
                print(
                    f"  {name}: empirical down to FMR {tail.empirical_down_to_fmr:.1e}, "
                    f"exponential tail beyond (scale {tail.scale:.4f})"
                )
    if args.holdout_json and holdout:
        args.holdout_json.parent.mkdir(parents=True, exist_ok=True)
        args.holdout_json.write_text(json.dumps(holdout, indent=2) + "\n", encoding="utf-8")
    return 0


def _eval_dedup(args: argparse.Namespace) -> int:
    from fvs.cli.dedup_eval import run

    if args.candidates < 1:
        print("error: --candidates must be at least 1", file=sys.stderr)
        return EXIT_USAGE
    if any(n < 0 for n in args.distractors):
        print("error: --distractors takes counts >= 0", file=sys.stderr)
        return EXIT_USAGE
    kinds = args.distractor_kind or ["isotropic"]
    photos = args.distractor_photos
    if set(kinds) - {"isotropic"} and (photos is None or not photos.is_dir()):
        print("error: face-like and real distractors need --distractor-photos DIR", file=sys.stderr)
        return EXIT_USAGE
    evaluation, s = _evaluation(args)
    mapping = _mapping(evaluation, None)
    if mapping is None:
        return EXIT_USAGE
    return run(args, evaluation, s, mapping, kinds)
