"""Face datasets laid out as identity folders, LFW pairs files, and label errata."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".bmp"}


@dataclass(frozen=True)
class Dataset:
    root: Path
    images: list[str]  # relative paths "Person/Person_0001.jpg", sorted
    identity: list[str]  # the folder (person) of each image

    @classmethod
    def scan(cls, root: Path) -> Dataset:
        images = sorted(
            str(p.relative_to(root))
            for p in root.glob("*/*")
            if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file()
        )
        return cls(root, images, [i.split("/")[0] for i in images])

    @classmethod
    def scan_population(cls, root: Path) -> Dataset:
        """Photos of a deployment's population: photos directly in ``root`` are each a
        distinct person; photos in a subfolder share the subfolder's identity."""
        flat = sorted(
            p.name for p in root.glob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file()
        )
        nested = cls.scan(root)
        images = flat + nested.images
        return cls(root, images, flat + nested.identity)

    def index(self) -> dict[str, int]:
        return {name: i for i, name in enumerate(self.images)}


@dataclass(frozen=True)
class Pair:
    a: str  # relative image path
    b: str
    genuine: bool
    fold: int


@dataclass
class PairsFile:
    pairs: list[Pair]
    problems: list[str] = field(default_factory=list)  # malformed lines, missing images


def _lfw_name(person: str, number: str) -> str:
    return f"{person}/{person}_{int(number):04d}.jpg"


def read_lfw_pairs(path: Path, dataset: Dataset) -> PairsFile:
    """An LFW pairs file: "N" (one set, then split in 10 folds in file order) or "F N"
    (F folds of N genuine then N impostor lines). Bad lines are reported, not fatal."""
    result = PairsFile([])
    try:
        lines = path.read_bytes().decode("utf-8").splitlines()
    except UnicodeDecodeError as exc:
        result.problems.append(f"{path}: not UTF-8 text (byte {exc.start})")
        return result
    header = lines[0].split() if lines else []
    if len(header) == 1 and header[0].isascii() and header[0].isdigit():
        folds, per = 1, int(header[0])
    elif len(header) == 2 and all(h.isascii() and h.isdigit() for h in header):
        folds, per = int(header[0]), int(header[1])
    else:
        result.problems.append(f"{path}:1: header must be 'N' or 'FOLDS N'")
        return result
    if per < 1 or folds < 1:
        result.problems.append(f"{path}:1: the header's counts must be at least 1")
        return result
    known = set(dataset.images)
    body = lines[1:]
    for line_no, line in enumerate(body, start=2):
        parts = line.split()
        block = (line_no - 2) // per  # genuine block, impostor block, ... per fold
        fold = block // 2 if folds > 1 else 0
        try:
            if len(parts) == 3:
                pair = Pair(
                    _lfw_name(parts[0], parts[1]), _lfw_name(parts[0], parts[2]), True, fold
                )
            elif len(parts) == 4:
                pair = Pair(
                    _lfw_name(parts[0], parts[1]), _lfw_name(parts[2], parts[3]), False, fold
                )
            else:
                raise ValueError("expected 3 or 4 fields")
        except ValueError as exc:
            result.problems.append(f"{path}:{line_no}: malformed line {line!r}: {exc}")
            continue
        missing = [p for p in (pair.a, pair.b) if p not in known]
        if missing:
            result.problems.append(f"{path}:{line_no}: missing image(s) {', '.join(missing)}")
            continue
        result.pairs.append(pair)
    if folds == 1:  # the View 1 files: 10 folds in file order, balanced
        genuine = [p for p in result.pairs if p.genuine]
        impostor = [p for p in result.pairs if not p.genuine]
        result.pairs = [
            Pair(p.a, p.b, p.genuine, i * 10 // max(len(group), 1))
            for group in (genuine, impostor)
            for i, p in enumerate(group)
        ]
    return result


@dataclass(frozen=True)
class Errata:
    """Images to exclude, and identities that are the same person under two names."""

    excluded: frozenset[str]  # relative image paths, or "Person/*"
    aliases: frozenset[frozenset[str]]  # pairs of identity names

    def excludes(self, image: str) -> bool:
        return image in self.excluded or f"{image.split('/', maxsplit=1)[0]}/*" in self.excluded

    def same_person(self, a: str, b: str) -> bool:
        return a == b or frozenset((a, b)) in self.aliases

    @classmethod
    def read(cls, path: Path | None, extra_aliases: Iterable[tuple[str, str]] = ()) -> Errata:
        """The LFW errata TSV (file, problem, suggestion) plus aliases given by hand."""
        excluded: set[str] = set()
        aliases = {frozenset(pair) for pair in extra_aliases}
        if path is not None:
            text = path.read_bytes().decode("utf-8", "replace")  # odd bytes match nothing
            for line in text.splitlines()[1:]:
                cols = line.split("\t")
                if len(cols) < 3:
                    continue
                target, problem, suggestion = cols[0].strip(), cols[1], cols[2].lower()
                if suggestion.startswith("exclude"):
                    excluded.add(target)
                elif suggestion.startswith("alias"):
                    person = target.split("/")[0]
                    other = re.search(
                        r"(?:as|with) ([A-Z][\w-]*(?:_[\w-]+)+)", problem + " " + cols[2]
                    )
                    if other:
                        aliases.add(frozenset((person, other.group(1))))
        return cls(frozenset(excluded), frozenset(aliases))


def all_pairs(
    dataset: Dataset, keep: np.ndarray, errata: Errata
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Index arrays (i, j, genuine) of every pair of kept images, i < j, never pairing two
    names of one person as impostors. Memory: 9 bytes a pair."""
    ids = np.array(dataset.identity)
    names, person = np.unique(ids, return_inverse=True)
    kept = np.flatnonzero(keep)
    i_idx, j_idx = np.triu_indices(kept.size, k=1)
    i_all, j_all = kept[i_idx], kept[j_idx]
    genuine = person[i_all] == person[j_all]
    if errata.aliases:
        alias_ids = [
            (np.flatnonzero(names == a), np.flatnonzero(names == b))
            for a, b in (tuple(pair) for pair in errata.aliases if len(pair) == 2)
        ]
        drop = np.zeros(i_all.size, dtype=bool)
        for a, b in alias_ids:
            if a.size and b.size:
                pa, pb = person[i_all], person[j_all]
                drop |= ((pa == a[0]) & (pb == b[0])) | ((pa == b[0]) & (pb == a[0]))
        i_all, j_all, genuine = i_all[~drop], j_all[~drop], genuine[~drop]
    return i_all, j_all, genuine
