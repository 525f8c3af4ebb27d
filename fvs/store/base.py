"""The store interface the service depends on."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import numpy.typing as npt

from fvs.domain import Citizen, CitizenView, Embedding, Template


@dataclass(frozen=True)
class TemplateChunk:
    """Active templates of one model: ids, (n, D) float32 unit vectors, versions, and the
    citizens whose rows failed their integrity check (left out, each keeps its reason)."""

    ids: list[str]
    vectors: npt.NDArray[np.float32]
    versions: list[int]
    failed: list[str]


class CitizenStore(Protocol):
    """Citizen records and their face templates.

    ``add_template`` is atomic: either the new version becomes the active template (the old
    ones kept as history) or nothing changes.
    """

    def get_citizen(self, citizen_id: str) -> CitizenView | None: ...

    def add_citizen(self, citizen: Citizen) -> bool:
        """Insert ``citizen``; False (and no change) when the ID already exists."""
        ...

    def add_citizens(
        self,
        citizens: Iterable[Citizen],
        templates: Iterable[tuple[str, np.ndarray]] | None = None,
        model_id: str = "",
    ) -> int: ...

    def active_template(self, citizen_id: str) -> Template | None: ...

    def add_template(
        self, citizen_id: str, model_id: str, vector: Embedding, create: Citizen | None = None
    ) -> tuple[Template, bool]:
        """Add a new active version; with ``create``, first insert that record if missing
        (same transaction). Returns the template and whether the citizen was created."""
        ...

    def delete_templates(self, citizen_id: str) -> int: ...

    def active_templates(self, model_id: str, batch: int = 65536) -> Iterator[TemplateChunk]:
        """Every active template of ``model_id`` (to build a template index)."""
        ...

    def close(self) -> None: ...
