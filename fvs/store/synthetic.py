"""Deterministic, plausible synthetic citizens (never real people)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator

import numpy as np
import numpy.typing as npt

from fvs.domain import CardStatus, Citizen, Sex

# (province code as used in ID digits 2-3, Thai name, romanised, districts (Thai, romanised))
PROVINCES: list[tuple[str, str, str, list[tuple[str, str]]]] = [
    (
        "10",
        "กรุงเทพมหานคร",
        "Bangkok",
        [
            ("พระนคร", "Phra Nakhon"),
            ("ดุสิต", "Dusit"),
            ("บางรัก", "Bang Rak"),
            ("ปทุมวัน", "Pathum Wan"),
            ("จตุจักร", "Chatuchak"),
        ],
    ),
    (
        "11",
        "สมุทรปราการ",
        "Samut Prakan",
        [("เมืองสมุทรปราการ", "Mueang Samut Prakan"), ("บางพลี", "Bang Phli")],
    ),
    ("12", "นนทบุรี", "Nonthaburi", [("เมืองนนทบุรี", "Mueang Nonthaburi"), ("ปากเกร็ด", "Pak Kret")]),
    (
        "20",
        "ชลบุรี",
        "Chon Buri",
        [("เมืองชลบุรี", "Mueang Chon Buri"), ("บางละมุง", "Bang Lamung"), ("ศรีราชา", "Si Racha")],
    ),
    (
        "30",
        "นครราชสีมา",
        "Nakhon Ratchasima",
        [("เมืองนครราชสีมา", "Mueang Nakhon Ratchasima"), ("ปากช่อง", "Pak Chong")],
    ),
    ("40", "ขอนแก่น", "Khon Kaen", [("เมืองขอนแก่น", "Mueang Khon Kaen"), ("ชุมแพ", "Chum Phae")]),
    (
        "50",
        "เชียงใหม่",
        "Chiang Mai",
        [("เมืองเชียงใหม่", "Mueang Chiang Mai"), ("สันทราย", "San Sai"), ("ฝาง", "Fang")],
    ),
    ("65", "พิษณุโลก", "Phitsanulok", [("เมืองพิษณุโลก", "Mueang Phitsanulok")]),
    ("83", "ภูเก็ต", "Phuket", [("เมืองภูเก็ต", "Mueang Phuket"), ("กะทู้", "Kathu")]),
    ("90", "สงขลา", "Songkhla", [("เมืองสงขลา", "Mueang Songkhla"), ("หาดใหญ่", "Hat Yai")]),
]

MALE_NAMES = [
    ("สมชาย", "Somchai"),
    ("ประเสริฐ", "Prasert"),
    ("วิชัย", "Wichai"),
    ("สมศักดิ์", "Somsak"),
    ("ธนากร", "Thanakorn"),
    ("ณัฐพล", "Nattaphon"),
    ("กิตติ", "Kitti"),
    ("อนุชา", "Anucha"),
    ("พงศกร", "Phongsakorn"),
    ("ศุภชัย", "Supachai"),
]
FEMALE_NAMES = [
    ("สมหญิง", "Somying"),
    ("มาลี", "Malee"),
    ("สุนิสา", "Sunisa"),
    ("วันเพ็ญ", "Wanphen"),
    ("กาญจนา", "Kanchana"),
    ("ณัฐธิดา", "Natthida"),
    ("ปิยะนุช", "Piyanuch"),
    ("อรทัย", "Orathai"),
    ("พรทิพย์", "Phonthip"),
    ("จิราพร", "Jiraporn"),
]
SURNAMES = [
    ("ใจดี", "Jaidee"),
    ("รักไทย", "Rakthai"),
    ("ศรีสุข", "Srisuk"),
    ("แก้วมณี", "Kaewmanee"),
    ("บุญมา", "Boonma"),
    ("สุขสวัสดิ์", "Suksawat"),
    ("วงศ์ใหญ่", "Wongyai"),
    ("ทองดี", "Thongdee"),
    ("พรหมมา", "Phromma"),
    ("ชัยมงคล", "Chaimongkol"),
    ("เจริญผล", "Charoenphon"),
    ("มีสุข", "Meesuk"),
]

_EPOCH = dt.date(1940, 1, 1)
_BIRTH_SPAN_DAYS = (dt.date(2008, 12, 31) - _EPOCH).days


_CHECK_BLOCK = 1 << 18


def _id_numbers(count: int, rng: np.random.Generator) -> npt.NDArray[np.int64]:
    """``count`` distinct 13-digit ID numbers (check digit included), in draw order."""
    categories = np.array([1, 2, 3, 5, 8], dtype=np.int64)
    weights = np.array([0.45, 0.05, 0.45, 0.03, 0.02])
    provinces = np.array([int(p[0]) for p in PROVINCES], dtype=np.int64)
    out = np.empty(0, dtype=np.int64)
    while out.shape[0] < count:
        need = count - out.shape[0]
        draw = need + need // 16 + 16
        first12 = (
            rng.choice(categories, size=draw, p=weights) * 10**11
            + provinces[rng.integers(0, len(PROVINCES), size=draw)] * 10**9
            + rng.integers(1, 100, size=draw) * 10**7
            + rng.integers(0, 10**7, size=draw)
        )
        candidates = np.concatenate([out, first12])
        _, first = np.unique(candidates, return_index=True)  # first occurrence of each
        out = candidates[np.sort(first)][:count]
    powers = 10 ** np.arange(11, -1, -1, dtype=np.int64)
    weights = np.arange(13, 1, -1, dtype=np.int64)
    check = np.empty_like(out)
    for k in range(0, out.shape[0], _CHECK_BLOCK):  # blocks: a (n, 12) digit matrix is 96 n B
        digits = (out[k : k + _CHECK_BLOCK, None] // powers) % 10
        check[k : k + _CHECK_BLOCK] = (11 - (digits * weights).sum(axis=1) % 11) % 10
    ids: npt.NDArray[np.int64] = out * 10 + check
    return ids


def synthetic_ids(count: int, rng: np.random.Generator) -> list[str]:
    """``count`` distinct, check-digit-valid IDs shaped like Thai ones.

    Digit 1: category 1-8 (mostly 1 and 3); digits 2-5: a province + district office of the
    list above; digits 6-12: book and sequence numbers. Vectorised: 10^7 IDs take seconds and
    80 MB.
    """
    return [f"{n:013d}" for n in _id_numbers(count, rng)]


def synthetic_citizens(count: int, seed: int) -> Iterator[Citizen]:
    """``count`` deterministic synthetic citizens for ``seed``, in ID order."""
    return SyntheticCitizens(count, seed).between(0, count)


class SyntheticCitizens:
    """The ``count`` citizens of ``seed``, drawn at once as arrays (10^7: seconds, about
    200 MB), any range of them made as records on demand (a seeding's worker process makes
    its chunks from one of these)."""

    def __init__(self, count: int, seed: int) -> None:
        rng = np.random.default_rng(seed)
        self.count = count
        # In ID order: a bulk load then appends to the ID-keyed B-trees (citizens, templates,
        # cards) instead of rewriting pages all over them (10^7 rows: linear, not quadratic).
        self._ids = np.sort(_id_numbers(count, rng))
        # drawn as int64 (the stream a seed gives), kept in the smallest type that holds them
        self._male = rng.integers(0, 2, size=count).astype(bool)
        self._first = rng.integers(0, len(MALE_NAMES), size=count).astype(np.int16)
        self._last = rng.integers(0, len(SURNAMES), size=count).astype(np.int16)
        self._prov = rng.integers(0, len(PROVINCES), size=count).astype(np.int16)
        self._dist = rng.integers(0, 1 << 30, size=count).astype(np.int32)
        self._birth = rng.integers(0, _BIRTH_SPAN_DAYS, size=count).astype(np.int32)
        self._status = rng.choice(3, size=count, p=[0.96, 0.03, 0.01]).astype(np.int8)

    def between(self, start: int, stop: int) -> Iterator[Citizen]:
        """Citizens ``start .. stop - 1``."""
        statuses = (CardStatus.ACTIVE, CardStatus.EXPIRED, CardStatus.REVOKED)
        for i in range(start, min(stop, self.count)):
            male = bool(self._male[i])
            given_th, given_en = (MALE_NAMES if male else FEMALE_NAMES)[self._first[i]]
            sur_th, sur_en = SURNAMES[self._last[i]]
            _code, prov_th, _prov_en, districts = PROVINCES[self._prov[i]]
            district_th, _ = districts[int(self._dist[i]) % len(districts)]
            yield Citizen(
                citizen_id=f"{self._ids[i]:013d}",
                first_name_th=given_th,
                last_name_th=sur_th,
                first_name_en=given_en,
                last_name_en=sur_en,
                sex=Sex.MALE if male else Sex.FEMALE,
                birth_date=_EPOCH + dt.timedelta(days=int(self._birth[i])),
                province=prov_th,
                district=district_th,
                card_status=statuses[int(self._status[i])],
                synthetic=True,
            )


def random_templates(count: int, dim: int, seed: int) -> npt.NDArray[np.float32]:
    """(count, dim) float32 random unit vectors (for scale tests, not real faces)."""
    rng = np.random.default_rng([seed, 0xFACE])
    vectors = rng.standard_normal((count, dim), dtype=np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors


def template_chunk(start: int, count: int, dim: int, seed: int) -> npt.NDArray[np.float32]:
    """Random unit-vector templates for citizens ``start .. start + count`` of a seeding:
    deterministic per (seed, start), so a seeding of any size runs in bounded memory."""
    rng = np.random.default_rng([seed, 0xFACE, start])
    vectors = rng.standard_normal((count, dim), dtype=np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors


def minimal_citizen(citizen_id: str) -> Citizen:
    """The placeholder record ``create_if_missing`` makes for testers and evaluation."""
    return Citizen(
        citizen_id=citizen_id,
        first_name_th="ทดสอบ",
        last_name_th="ระบบ",
        first_name_en="Test",
        last_name_en="Subject",
        sex=Sex.FEMALE,
        birth_date=dt.date(1990, 1, 1),
        province="กรุงเทพมหานคร",
        district="พระนคร",
        card_status=CardStatus.ACTIVE,
        synthetic=True,
    )
