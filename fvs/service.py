"""The transport-neutral verification service: what Verify, Enroll, GetCitizen and
DeleteEnrollment do, whatever carries them."""

from __future__ import annotations

import logging
import time
import uuid

from fvs import citizen_id as cid
from fvs.dedup.search import DuplicateSearch
from fvs.domain import (
    CitizenView,
    DuplicateMatch,
    Embedding,
    EnrollRequest,
    EnrollResult,
    Probe,
    Template,
    VerifyRequest,
    VerifyResult,
)
from fvs.errors import ErrorCode, FvsError
from fvs.limits import check_image, check_verify
from fvs.observability import hooks
from fvs.pipeline.pipeline import FacePipeline
from fvs.pipeline.score import ScoreMapping, cosine
from fvs.store.base import CitizenStore
from fvs.store.index import TemplateIndex
from fvs.store.index_snapshot import IndexSnapshots
from fvs.store.synthetic import minimal_citizen

log = logging.getLogger(__name__)


def _request_id(given: str) -> str:
    return given or uuid.uuid4().hex


class FaceService:
    """Verify / enroll / look up. Blocking: callers run it off their event loop."""

    def __init__(
        self,
        store: CitizenStore,
        fallback: ScoreMapping,
        index_encoding: str = "f32",
        dedup: DuplicateSearch | None = None,
        snapshots: IndexSnapshots | None = None,
    ) -> None:
        """``fallback`` maps scores when the model pack has no calibration;
        ``index_encoding``: how the template index holds rows (fvs.store.index);
        ``dedup``: the 1:N duplicate search run at enrolment (None: none);
        ``snapshots``: start the index from a snapshot (fvs.store.index_snapshot)."""
        self.store = store
        self.snapshots = snapshots
        self.index_encoding = index_encoding
        self.fallback = fallback
        self.dedup = dedup
        self.index: TemplateIndex | None = None
        self._pipeline: FacePipeline | None = None

    def set_pipeline(self, pipeline: FacePipeline) -> None:
        """Load the template index for this model; from then on calls are served."""
        start = time.perf_counter()
        model_id, dim = pipeline.info.model_id, pipeline.manifest.recognizer.embedding_size
        if self.snapshots is not None:
            self.index = self.snapshots.open_index(model_id, dim, self.index_encoding)
            source = self.snapshots.source
            if source == "snapshot":
                replay = (
                    f"{self.snapshots.replayed} changes replayed in {self.snapshots.replay_s:.1f} s"
                )
                source += f" ({replay})"
        else:
            self.index = TemplateIndex.from_store(self.store, model_id, dim, self.index_encoding)
            source = "store"
        log.info(
            "template index: %d templates of %s from the %s in %.1f s",
            len(self.index),
            model_id,
            source,
            time.perf_counter() - start,
        )
        if self.index.failed:
            log.error(
                "template index: %d templates failed their integrity check and are left out "
                "(those citizens get TEMPLATE_INTEGRITY until re-enrolled)",
                len(self.index.failed),
            )
        if self.dedup is not None and self.dedup.enabled:
            self.dedup.attach(self.index, pipeline.mapping or self.fallback)
        self._pipeline = pipeline

    @property
    def ready(self) -> bool:
        return self._pipeline is not None

    @property
    def pipeline(self) -> FacePipeline:
        if self._pipeline is None:
            raise FvsError(
                ErrorCode.MODEL_NOT_READY, "the face model is still loading; retry shortly"
            )
        return self._pipeline

    def verify(self, request: VerifyRequest) -> VerifyResult:
        start = time.perf_counter()
        check_verify(request)  # the intake ran these already; a direct caller gets them here
        request_id = _request_id(request.request_id)
        pipeline = self.pipeline
        indexed = self.index.lookup(request.citizen_id) if self.index is not None else None
        if indexed is not None:
            vector, version = indexed
        else:  # not in the index: the store says why (or has it, without an index)
            with hooks.timed("store"):
                template = self._enrolled_template(request.citizen_id, pipeline.info.model_id)
            vector, version = template.vector, template.version
        probe: Probe = pipeline.extract(request.image, "verify")
        t = time.perf_counter()
        similarity = cosine(probe.embedding, vector)
        mapping = pipeline.mapping or self.fallback
        score, false_match_rate = mapping.score(similarity, probe.embedding, vector)
        probe.timings.match_ms = (time.perf_counter() - t) * 1000.0
        hooks.stage("match", probe.timings.match_ms / 1000.0)
        probe.timings.total_ms = (time.perf_counter() - start) * 1000.0
        return VerifyResult(
            match_score=score,
            similarity=similarity,
            model=pipeline.info.model_id,
            face=probe.face,
            request_id=request_id,
            template_version=version,
            score_mapping=mapping.id,
            false_match_rate=false_match_rate,
            quality=probe.quality,
            timings=probe.timings,
        )

    def _enrolled_template(self, citizen_id: str, model_id: str) -> Template:
        template = self.store.active_template(citizen_id)
        if template is None:
            if self.store.get_citizen(citizen_id) is None:
                raise FvsError(ErrorCode.CITIZEN_NOT_FOUND, "no citizen with this ID")
            raise FvsError(ErrorCode.NOT_ENROLLED, "this citizen has no enrolled face")
        if template.model_id != model_id:
            raise FvsError(
                ErrorCode.TEMPLATE_MODEL_MISMATCH,
                f"the enrolled template was made by model {template.model_id}, this server "
                f"runs {model_id}; re-enrol the citizen with this model",
                template_model=template.model_id,
                server_model=model_id,
            )
        return template

    def enroll(self, request: EnrollRequest) -> EnrollResult:
        cid.validate(request.citizen_id)
        check_image(request.image, None)
        pipeline = self.pipeline
        with hooks.timed("store"):
            exists = self.store.get_citizen(request.citizen_id) is not None
        if not exists and not request.create_if_missing:
            raise FvsError(
                ErrorCode.CITIZEN_NOT_FOUND,
                "no citizen with this ID (set create_if_missing to create one)",
            )
        probe = pipeline.extract(request.image, "enroll")
        if self.dedup is None or not self.dedup.enabled:
            template, created = self._store_template(request, probe.embedding, exists)
            duplicates: list[DuplicateMatch] = []
            case = 0
        else:
            template, created, duplicates, case = self._checked_enrol(
                request, probe.embedding, exists
            )
        log.info("enrolled template v%d (citizen created: %s)", template.version, created)
        return EnrollResult(
            citizen_id=request.citizen_id,
            template_version=template.version,
            model=template.model_id,
            face=probe.face,
            citizen_created=created,
            enrolled_at=template.enrolled_at,
            quality=probe.quality,
            duplicates=duplicates,
            duplicate_case=case,
        )

    def _store_template(
        self, request: EnrollRequest, embedding: Embedding, exists: bool
    ) -> tuple[Template, bool]:
        with hooks.timed("store"):
            template, created = self.store.add_template(
                request.citizen_id,
                self.pipeline.info.model_id,
                embedding,
                create=None if exists else minimal_citizen(request.citizen_id),
            )
        if self.index is not None:
            self.index.put(request.citizen_id, template.vector, template.version)
        return template, created

    def _checked_enrol(
        self, request: EnrollRequest, embedding: Embedding, exists: bool
    ) -> tuple[Template, bool, list[DuplicateMatch], int]:
        """Enrol after a 1:N search of the other citizens (issue 9): refuse mode raises
        DUPLICATE_IDENTITY naming the best candidate, flag mode stores and reports them;
        either way a case is kept for adjudication."""
        dedup = self.dedup
        assert dedup is not None and dedup.cases is not None
        model_id = self.pipeline.info.model_id
        with dedup.enrol_lock:
            with hooks.timed("dedup"):
                duplicates = dedup.duplicates_of(request.citizen_id, embedding)
            best = duplicates[0] if duplicates else None
            if best is not None and dedup.settings.mode == "refuse":
                case = dedup.cases.open_case(
                    "refused",
                    request.citizen_id,
                    0,
                    best.citizen_id,
                    best.template_version,
                    best.similarity,
                    best.score,
                    len(duplicates),
                    model_id,
                )
                error = FvsError(
                    ErrorCode.DUPLICATE_IDENTITY,
                    f"this face is already enrolled under another citizen ID (score "
                    f"{best.score:.1f}); the enrolment was refused and kept as duplicate "
                    f"case {case} for adjudication",
                    candidate_citizen_id=best.citizen_id,
                    candidate_score=f"{best.score:.2f}",
                    candidate_similarity=f"{best.similarity:.4f}",
                    candidates=str(len(duplicates)),
                    case_id=str(case),
                )
                # the audit trail leads to the adjudication, never to the candidate's ID
                error.audit["duplicate_case"] = case
                raise error
            template, created = self._store_template(request, embedding, exists)
        dedup.maybe_rebuild()  # compaction / a bigger kind, in the background when due
        case = 0
        if best is not None:
            case = dedup.cases.open_case(
                "flagged",
                request.citizen_id,
                template.version,
                best.citizen_id,
                best.template_version,
                best.similarity,
                best.score,
                len(duplicates),
                model_id,
            )
        return template, created, duplicates, case

    def search_duplicates(
        self, k: int, image: bytes | None = None, citizen_id: str | None = None
    ) -> list[DuplicateMatch]:
        """The ``k`` enrolled citizens most like a photo, or like a citizen's enrolled face
        (that citizen left out)."""
        if self.dedup is None or not self.dedup.enabled:
            raise FvsError(
                ErrorCode.DUPLICATE_SEARCH_UNAVAILABLE,
                "duplicate search is off on this server (dedup.mode = off)",
            )
        if image is not None:
            probe = self.pipeline.extract(image, "verify").embedding
            return self.dedup.search(probe, k)
        assert citizen_id is not None
        cid.validate(citizen_id)
        template = self._enrolled_template(citizen_id, self.pipeline.info.model_id)
        return self.dedup.search(template.vector, k, exclude=citizen_id)

    def get_citizen(self, citizen_id: str) -> CitizenView:
        cid.validate(citizen_id)
        with hooks.timed("store"):
            view = self.store.get_citizen(citizen_id)
        if view is None:
            raise FvsError(ErrorCode.CITIZEN_NOT_FOUND, "no citizen with this ID")
        return view

    def delete_enrollment(self, citizen_id: str) -> int:
        cid.validate(citizen_id)
        with hooks.timed("store"):
            deleted = self.store.delete_templates(citizen_id)
        if self.index is not None:
            self.index.remove(citizen_id)
        return deleted
