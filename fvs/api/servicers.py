"""Thin gRPC servicers: protobuf -> domain -> gate + service (in a worker thread) -> protobuf."""

from __future__ import annotations

import asyncio
import contextvars
import hashlib
import logging
import math
import threading
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import Executor, ThreadPoolExecutor
from typing import Any, NamedTuple, TypeVar

import grpc

from fvs.access.admin import AdminService
from fvs.access.gate import CallFacts, Gate
from fvs.access.model import Authorization, Caller, Operation
from fvs.admission import Admission, Decision
from fvs.api import convert
from fvs.api.errors import grpc_code, internal_status, to_grpc_status
from fvs.api.identity import caller_of
from fvs.api.refusals import RefusalAudit
from fvs.api.v1 import (
    admin_pb2,
    admin_pb2_grpc,
    registry_pb2,
    registry_pb2_grpc,
    verification_pb2,
    verification_pb2_grpc,
)
from fvs.domain import CitizenView, EnrollResult, VerifyRequest, VerifyResult
from fvs.errors import ErrorCode, FvsError
from fvs.intake import (
    DEFAULT_SEARCH_K,
    IntakeLimits,
    batch_facts,
    refused,
    registry_call,
    search_call,
    verify_call,
)
from fvs.observability import hooks
from fvs.observability.context import call_request_id, note_outcome, note_request_id
from fvs.receipts import Receipt, ReceiptSigner
from fvs.service import FaceService

log = logging.getLogger(__name__)

T = TypeVar("T")

# Refusals that say a component is down (fvs_component_healthy).
_FAILED_COMPONENT = {ErrorCode.STORE_UNAVAILABLE: "store", ErrorCode.AUDIT_UNAVAILABLE: "audit"}
Context = grpc.aio.ServicerContext[Any, Any]


class Job:
    """One admitted call on its way to a worker. Either the worker starts it, or the event
    loop abandons it (the caller cancelled or ran out of time first); never both."""

    def __init__(self, time_remaining: float | None) -> None:
        self.deadline = None if time_remaining is None else time.monotonic() + time_remaining
        self._lock = threading.Lock()
        self._started = False
        self._abandoned = False
        self.service_s: float | None = None  # time it spent in a worker

    def expired(self) -> bool:
        return self.deadline is not None and time.monotonic() >= self.deadline

    def start(self) -> bool:
        """Worker side: False when the call was abandoned (it must not run)."""
        with self._lock:
            if self._abandoned:
                return False
            self._started = True
            return True

    def abandon(self) -> bool:
        """Loop side: True when the worker will never run the call."""
        with self._lock:
            if self._started:
                return False
            self._abandoned = True
            return True

    def check_deadline(self) -> None:
        if self.expired():
            raise FvsError(
                ErrorCode.DEADLINE_EXCEEDED,
                "the call's deadline passed before it reached the model",
            )


class Runner:
    """Runs a call through admission and the gate in the executor; turns failures into rich
    statuses."""

    def __init__(
        self,
        service: FaceService,
        gate: Gate,
        executor: Executor,
        insecure: bool,
        admin: AdminService,
        capacity: int = 1_000_000,
        workers: int = 1,
        max_queue_wait_s: float = math.inf,
        limits: IntakeLimits | None = None,
        receipts: ReceiptSigner | None = None,
    ) -> None:
        self.service = service
        self.receipts = receipts
        self.limits = limits or IntakeLimits()
        self.gate = gate
        self.executor = executor
        self.insecure = insecure
        self.admin = admin
        self.admission = Admission(capacity, workers, max_queue_wait_s)
        # told of every refusal's code: the server flips health on AUDIT/STORE_UNAVAILABLE
        self.on_failure: Callable[[ErrorCode], None] | None = None
        # refusal records must not queue behind model work
        self.audit_executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="fvs-audit")
        self.refusals = RefusalAudit(gate, self.audit_executor)  # batched under a storm
        self._degraded: set[str] = set()  # components a failure was reported for

    def _in(self, executor: Executor, fn: Callable[..., T], *args: Any) -> asyncio.Future[T]:
        """``fn(*args)`` in ``executor``, with this call's context (log fields, metrics)."""
        context = contextvars.copy_context()
        return asyncio.get_running_loop().run_in_executor(executor, context.run, fn, *args)

    def _report(self, error: FvsError | None) -> None:
        """Store and audit health for the metrics: a failure marks the component unhealthy,
        the next call that gets through marks it healthy again."""
        if error is None:
            if self._degraded:
                for component in self._degraded:
                    hooks.health(component, True)
                self._degraded.clear()
            return
        failed = _FAILED_COMPONENT.get(error.code)
        if failed is not None:
            self._degraded.add(failed)
            hooks.health(failed, False)

    async def _answer(self, context: Context, method: str, call: Awaitable[T]) -> T:
        """Await ``call``; a refusal or failure aborts the RPC with its rich status."""
        try:
            result = await call
        except FvsError as exc:
            log.info("%s refused: %s (%s)", method, exc.code.value, exc.message)
            note_outcome(grpc_code(exc.code).name, exc.code.value)
            self._report(exc)
            status = to_grpc_status(exc)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("%s failed unexpectedly", method)
            note_outcome("INTERNAL", ErrorCode.INTERNAL.value)
            status = internal_status()
        else:
            self._report(None)
            return result
        await context.abort_with_status(status)
        raise AssertionError("abort_with_status returned")  # pragma: no cover

    async def gated(
        self,
        context: Context,
        facts: CallFacts,
        fn: Callable[[Authorization], T],
        outcome: Callable[[T], dict[str, Any]] | None = None,
    ) -> T:
        """Admission, gate and service for one call; a refusal aborts the RPC."""
        return await self._answer(
            context, facts.operation.value, self.execute(context, facts, fn, outcome)
        )

    async def execute(
        self,
        context: Context,
        facts: CallFacts,
        fn: Callable[[Authorization], T],
        outcome: Callable[[T], dict[str, Any]] | None = None,
    ) -> T:
        """Admission, gate and service for one call (or one batch item); raises FvsError."""
        caller = caller_of(context, self.insecure)
        time_remaining = context.time_remaining()
        decision = self.admission.decide(time_remaining)
        if not decision.admitted:
            await self._refuse_overloaded(caller, facts, decision)
        job = Job(time_remaining)
        admitted = time.perf_counter()
        waited = 0.0

        ran = False
        flushes: list[Callable[[], None]] = []  # the outcome's audit record, written

        def checked(auth: Authorization) -> T:
            nonlocal ran
            job.check_deadline()  # never run the model for a caller out of time
            if self.admission.expired_bound(decision, waited):
                raise self._late(waited)
            ran = True
            return fn(auth)

        def work() -> T:
            nonlocal waited
            if not job.start():
                raise FvsError(ErrorCode.CANCELLED, "abandoned before it ran")
            began = time.perf_counter()
            waited = began - admitted
            hooks.admission_wait(waited)
            try:
                return self.gate.run(
                    caller, facts, checked, outcome or (lambda _: {}), flushes=flushes
                )
            finally:
                # only calls that did their work measure the service time: a call refused in
                # the worker (late, out of time, not permitted) takes a fraction of it, and
                # counting it would lower the estimate and admit more calls than can be
                # served (under 16x overload about half the admitted calls were then refused
                # after waiting)
                if ran:
                    job.service_s = time.perf_counter() - began

        try:
            try:
                result = await self._in(self.executor, work)
            except Exception:
                await self._durable(flushes)  # the refusal's record too, before it leaves
                raise
            await self._durable(flushes)
            return result
        except FvsError as exc:
            if self.on_failure is not None:
                self.on_failure(exc.code)
            raise
        except asyncio.CancelledError:
            if job.abandon():  # the worker will never see it: record why here
                code = ErrorCode.DEADLINE_EXCEEDED if job.expired() else ErrorCode.CANCELLED
                error = FvsError(code, "the caller went away before the call ran")
                self.audit_executor.submit(self._record_quietly, caller, facts, error)
            raise
        finally:
            self.admission.leave(job.service_s)

    async def _durable(self, flushes: list[Callable[[], None]]) -> None:
        """Flush the call's audit record on the audit thread before the answer leaves
        (raises AUDIT_UNAVAILABLE instead when it cannot be flushed)."""
        if flushes:
            await self._in(self.audit_executor, _run_all, flushes)

    def _record_quietly(self, caller: Caller, facts: CallFacts, error: FvsError) -> None:
        try:
            self.gate.refuse(caller, facts, error)
        except FvsError:
            log.exception("could not audit an abandoned call")

    def _late(self, waited_s: float) -> FvsError:
        """OVERLOADED for a call the estimate admitted that a worker reached too late to
        answer within the queue bound (refused by the gate, so audited, and never run)."""
        return _overloaded(
            f"the server could not reach this call within its queue bound (waited"
            f" {1000 * waited_s:.0f} ms)",
            self.admission.late_retry_s(),
            waited_ms=str(round(1000 * waited_s)),
        )

    async def _refuse_overloaded(
        self, caller: Caller, facts: CallFacts, decision: Decision
    ) -> None:
        error = _overloaded(
            f"the server cannot answer this call in time ({decision.why})",
            decision.retry_after_s,
            expected_wait_ms=str(round(1000 * decision.expected_wait_s)),
        )
        # an audit failure (AUDIT_UNAVAILABLE) propagates instead of the refusal
        await self.refusals.record(caller, facts, error)
        raise error

    def verified(self, request: VerifyRequest, auth: Authorization) -> Verified:
        """Verify, and sign the receipt of the answer (in the worker, inside the gate)."""
        result = self.service.verify(request)
        receipt = None
        if self.receipts is not None:
            receipt = self.receipts.issue(
                request, result, auth.system.agency_code, auth.system.label
            )
        return Verified(result, receipt)

    async def refuse_message(
        self, context: Context, operation: Operation, action: str, problem: FvsError
    ) -> None:
        """Audit and refuse a call whose message could not be read (the message guard)."""
        await self.gated(context, refused(operation, problem, action), lambda _auth: None)

    async def admin_call(self, context: Context, fn: Callable[[Any], T]) -> T:
        """An Admin method: authorization and audit happen inside AdminService."""
        caller = caller_of(context, self.insecure)
        return await self._answer(context, "Admin", self._in(self.executor, fn, caller))


def _run_all(flushes: list[Callable[[], None]]) -> None:
    for flush in flushes:
        flush()


def _overloaded(why: str, retry_s: float, **metadata: str) -> FvsError:
    """OVERLOADED with its retry delay in the message, the ErrorInfo metadata
    (``retry_after_ms``) and the RetryInfo (``retry_after_s``)."""
    retry_ms = max(1, round(1000 * retry_s))
    error = FvsError(
        ErrorCode.OVERLOADED,
        f"{why}; retry after {retry_ms} ms",
        **metadata,
        retry_after_ms=str(retry_ms),
    )
    error.retry_after_s = retry_ms / 1000
    return error


def _verify_call(
    request: verification_pb2.VerifyRequest, limits: IntakeLimits
) -> tuple[VerifyRequest, CallFacts]:
    """The domain request (with a request id generated when none was sent) and its facts,
    checked by the intake (a malformed or oversized field is refused, audited, before the
    access rules)."""
    domain, problem = convert.verify_request(request)
    return verify_call(domain, limits, problem)


class Verified(NamedTuple):
    result: VerifyResult
    receipt: Receipt | None


def _verify_outcome(verified: tuple[VerifyResult, Receipt | None]) -> dict[str, Any]:
    result, receipt = verified
    fields: dict[str, Any] = {
        "score": round(result.match_score, 4),
        "similarity": round(result.similarity, 6),
        "model": result.model,
        "request_id": result.request_id,
        "template_version": result.template_version,
    }
    if receipt is not None:  # ties the record to the receipt the agency holds
        fields["receipt"] = hashlib.sha256(receipt.signature).hexdigest()[:32]
    return fields


def _enroll_outcome(result: EnrollResult) -> dict[str, Any]:
    return {
        "model": result.model,
        "template_version": result.template_version,
        "citizen_created": result.citizen_created,
        **({"duplicate_case": result.duplicate_case} if result.duplicate_case else {}),
    }


Kyc = Callable[
    [verification_pb2.VerifyRequest, Context], Awaitable[verification_pb2.VerifyResponse]
]


class FaceVerificationServicer(verification_pb2_grpc.FaceVerificationServicer):  # type: ignore[misc]
    def __init__(self, runner: Runner, kyc: Kyc | None = None) -> None:
        self._r = runner
        self._kyc = kyc  # Verify with claimed attributes (fvs.api.digitalid.KycVerify)

    async def Verify(
        self, request: verification_pb2.VerifyRequest, context: Context
    ) -> verification_pb2.VerifyResponse:
        if request.HasField("claimed"):
            if self._kyc is None:
                await context.abort_with_status(to_grpc_status(_NO_KYC))
            else:
                return await self._kyc(request, context)
        domain, facts = _verify_call(request, self._r.limits)
        note_request_id(facts.request_id)
        result, receipt = await self._r.gated(
            context, facts, lambda auth: self._r.verified(domain, auth), _verify_outcome
        )
        return convert.verify_response(result, receipt)

    async def VerifyBatch(
        self, request: verification_pb2.VerifyBatchRequest, context: Context
    ) -> verification_pb2.VerifyBatchResponse:
        refused = batch_facts(len(request.items), self._r.limits)
        if refused is not None:  # audited as one refused call, then INVALID_ARGUMENT
            await self._r.gated(context, refused, lambda _auth: None)
        results = await asyncio.gather(*[self._item(item, context) for item in request.items])
        return verification_pb2.VerifyBatchResponse(results=results)

    async def _item(
        self, item: verification_pb2.VerifyRequest, context: Context
    ) -> verification_pb2.VerifyBatchResult:
        if item.HasField("claimed"):
            error = FvsError(
                ErrorCode.INVALID_REQUEST,
                "claimed attributes are checked by Verify, not in VerifyBatch items",
                field="items.claimed",
            )
            return verification_pb2.VerifyBatchResult(error=convert.item_error(error))
        domain, facts = _verify_call(item, self._r.limits)
        try:
            result, receipt = await self._r.execute(
                context, facts, lambda auth: self._r.verified(domain, auth), _verify_outcome
            )
        except FvsError as exc:
            return verification_pb2.VerifyBatchResult(error=convert.item_error(exc))
        except Exception:
            log.exception("a VerifyBatch item failed unexpectedly")
            error = FvsError(ErrorCode.INTERNAL, "internal error")
            return verification_pb2.VerifyBatchResult(error=convert.item_error(error))
        return verification_pb2.VerifyBatchResult(response=convert.verify_response(result, receipt))


_NO_KYC = FvsError(
    ErrorCode.INVALID_REQUEST,
    "this server does not check claimed attributes",
    field="claimed",
)


IdCardLookup = Callable[[CitizenView], Any]  # -> attributes_pb2.IdCardRecord | None


class RegistryServicer(registry_pb2_grpc.RegistryServicer):  # type: ignore[misc]
    def __init__(self, runner: Runner, id_card: IdCardLookup | None = None) -> None:
        self._r = runner
        self._id_card = id_card  # the Digital ID card facts (fvs.api.digitalid.id_card_lookup)

    async def Enroll(
        self, request: registry_pb2.EnrollRequest, context: Context
    ) -> registry_pb2.EnrollResponse:
        domain = convert.enroll_request(request)
        facts = registry_call(
            Operation.ENROLL,
            domain.citizen_id,
            domain.image,
            self._r.limits,
            mutates=True,
            request_id=call_request_id(),
        )
        result = await self._r.gated(
            context, facts, lambda _auth: self._r.service.enroll(domain), _enroll_outcome
        )
        return convert.enroll_response(result)

    async def GetCitizen(
        self, request: registry_pb2.GetCitizenRequest, context: Context
    ) -> registry_pb2.Citizen:
        facts = registry_call(
            Operation.GET_CITIZEN, request.citizen_id, request_id=call_request_id()
        )

        def look(_auth: Authorization) -> tuple[CitizenView, Any]:
            view = self._r.service.get_citizen(request.citizen_id)
            return view, self._id_card(view) if self._id_card is not None else None

        view, card = await self._r.gated(context, facts, look)
        message = convert.citizen(view)
        if card is not None:
            message.id_card.CopyFrom(card)
        return message

    async def DeleteEnrollment(
        self, request: registry_pb2.DeleteEnrollmentRequest, context: Context
    ) -> registry_pb2.DeleteEnrollmentResponse:
        facts = registry_call(
            Operation.DELETE_ENROLLMENT,
            request.citizen_id,
            mutates=True,
            request_id=call_request_id(),
        )
        deleted = await self._r.gated(
            context,
            facts,
            lambda _auth: self._r.service.delete_enrollment(request.citizen_id),
            lambda n: {"templates_deleted": n},
        )
        return registry_pb2.DeleteEnrollmentResponse(
            citizen_id=request.citizen_id, templates_deleted=deleted
        )

    async def SearchDuplicates(
        self, request: registry_pb2.SearchDuplicatesRequest, context: Context
    ) -> registry_pb2.SearchDuplicatesResponse:
        which = request.WhichOneof("probe")
        image = request.image if which == "image" else None
        citizen_id = request.citizen_id if which == "citizen_id" else None
        facts = search_call(citizen_id, image, request.k, self._r.limits, call_request_id())
        k = request.k or DEFAULT_SEARCH_K
        matches = await self._r.gated(
            context,
            facts,
            lambda _auth: self._r.service.search_duplicates(k, image, citizen_id),
            lambda found: {"candidates": len(found)},
        )
        dedup = self._r.service.dedup
        return registry_pb2.SearchDuplicatesResponse(
            candidates=[convert.duplicate_candidate(m) for m in matches],
            model=self._r.service.pipeline.info.model_id,
            max_fmr=dedup.settings.max_fmr if dedup is not None else 0.0,
        )


class AdminServicer(admin_pb2_grpc.AdminServicer):  # type: ignore[misc]
    def __init__(self, runner: Runner) -> None:
        self._r = runner
        self._a = runner.admin

    async def AddAgency(
        self, request: admin_pb2.AddAgencyRequest, context: Context
    ) -> admin_pb2.Agency:
        a = request.agency
        agency = await self._r.admin_call(
            context,
            lambda caller: self._a.add_agency(
                caller,
                a.code,
                convert.agency_kind_name(a.kind),
                a.name,
                a.registration_number,
                a.mission,
                [(s.name, s.contact) for s in a.supervisors],
            ),
        )
        return convert.agency(agency)

    async def GetAgency(
        self, request: admin_pb2.GetAgencyRequest, context: Context
    ) -> admin_pb2.AgencyDetails:
        agency, permits, systems = await self._r.admin_call(
            context, lambda caller: self._a.agency(caller, request.code)
        )
        return admin_pb2.AgencyDetails(
            agency=convert.agency(agency),
            permits=[convert.permit(p) for p in permits],
            systems=[convert.system(s) for s in systems],
        )

    async def ListAgencies(
        self, request: admin_pb2.ListAgenciesRequest, context: Context
    ) -> admin_pb2.ListAgenciesResponse:
        agencies = await self._r.admin_call(context, self._a.agencies)
        return admin_pb2.ListAgenciesResponse(agencies=[convert.agency(a) for a in agencies])

    async def AddPurpose(
        self, request: admin_pb2.AddPurposeRequest, context: Context
    ) -> admin_pb2.Purpose:
        purpose = await self._r.admin_call(
            context,
            lambda caller: self._a.add_purpose(
                caller, request.purpose.code, request.purpose.description
            ),
        )
        return admin_pb2.Purpose(code=purpose.code, description=purpose.description)

    async def GrantPermit(
        self, request: admin_pb2.GrantPermitRequest, context: Context
    ) -> admin_pb2.Permit:
        problem: FvsError | None = None
        valid_from = valid_until = None
        try:
            valid_from = convert.optional_time(request, "valid_from")
            valid_until = convert.optional_time(request, "valid_until")
        except FvsError as exc:  # a malformed time: refused and audited like any refusal
            problem = exc
        permit = await self._r.admin_call(
            context,
            lambda caller: self._a.grant_permit(
                caller,
                request.agency_code,
                list(request.purposes),
                valid_from,
                valid_until,
                problem=problem,
            ),
        )
        return convert.permit(permit)

    async def _change(
        self, request: admin_pb2.ChangePermitRequest, context: Context, action: str
    ) -> admin_pb2.Permit:
        permit = await self._r.admin_call(
            context,
            lambda caller: self._a.change_permit(caller, request.permit_id, action, request.reason),
        )
        return convert.permit(permit)

    async def SuspendPermit(
        self, request: admin_pb2.ChangePermitRequest, context: Context
    ) -> admin_pb2.Permit:
        return await self._change(request, context, "suspend")

    async def ResumePermit(
        self, request: admin_pb2.ChangePermitRequest, context: Context
    ) -> admin_pb2.Permit:
        return await self._change(request, context, "resume")

    async def RevokePermit(
        self, request: admin_pb2.ChangePermitRequest, context: Context
    ) -> admin_pb2.Permit:
        return await self._change(request, context, "revoke")

    async def SetRateLimit(
        self, request: admin_pb2.SetRateLimitRequest, context: Context
    ) -> admin_pb2.Permit:
        permit = await self._r.admin_call(
            context,
            lambda caller: self._a.set_rate_limit(
                caller, request.permit_id, request.rate_per_s, request.burst
            ),
        )
        return convert.permit(permit)

    async def RegisterSystem(
        self, request: admin_pb2.RegisterSystemRequest, context: Context
    ) -> admin_pb2.System:
        pem = request.certificate_pem.encode() if request.HasField("certificate_pem") else None
        system = await self._r.admin_call(
            context,
            lambda caller: self._a.register_system(
                caller,
                request.agency_code,
                request.name,
                cert_pem=pem,
                fingerprint_hex=request.fingerprint,
            ),
        )
        return convert.system(system)

    async def SetConditions(
        self, request: admin_pb2.SetConditionsRequest, context: Context
    ) -> admin_pb2.SetConditionsResponse:
        version = await self._r.admin_call(
            context, lambda caller: self._a.set_conditions(caller, request.version, request.summary)
        )
        return admin_pb2.SetConditionsResponse(version=version)
