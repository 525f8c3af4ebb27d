"""OpenTelemetry traces, exported by OTLP (gRPC) only when an endpoint is configured.

One span per call (``fvs.<Method>``, with the request id that the call's audit record also
carries, the agency, the gRPC code and the FVS reason) and a child span per stage, timed by the
same hooks as the metrics. Off by default: with no endpoint no provider is made and nothing is
exported.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor, SpanExporter

from fvs.observability.context import CallContext, current_call

log = logging.getLogger(__name__)


class Tracing:
    """A ``hooks.Sink`` that turns stage timings into child spans of the call's span."""

    def __init__(self, provider: TracerProvider) -> None:
        self.provider = provider
        self.tracer = provider.get_tracer("fvs")

    @classmethod
    def otlp(cls, endpoint: str, service_name: str = "fvs", insecure: bool = True) -> Tracing:
        """Export by OTLP/gRPC to ``endpoint`` (e.g. http://127.0.0.1:4317) in batches."""
        tracing = cls.with_exporter(
            OTLPSpanExporter(endpoint=endpoint, insecure=insecure), service_name, batch=True
        )
        log.info("tracing: spans exported by OTLP to %s", endpoint)
        return tracing

    @classmethod
    def with_exporter(
        cls, exporter: SpanExporter, service_name: str = "fvs", batch: bool = True
    ) -> Tracing:
        provider = TracerProvider(resource=Resource.create({"service.name": service_name}))
        processor = BatchSpanProcessor(exporter) if batch else SimpleSpanProcessor(exporter)
        provider.add_span_processor(processor)
        return cls(provider)

    def start_call(self, call: CallContext) -> None:
        call.span = self.tracer.start_span(f"fvs.{call.method}", kind=trace.SpanKind.SERVER)

    def end_call(self, call: CallContext) -> None:
        span: Any = call.span
        if span is None:
            return
        span.set_attribute("fvs.request_id", call.request_id)
        span.set_attribute("fvs.agency", call.agency)
        span.set_attribute("rpc.grpc.status_code", call.code)
        if call.reason:
            span.set_attribute("fvs.reason", call.reason)
            span.set_status(trace.Status(trace.StatusCode.ERROR, call.reason))
        span.end()
        call.span = None

    # hooks.Sink
    def stage(self, name: str, seconds: float) -> None:
        call = current_call()
        if call is None or call.span is None:
            return
        end = time.time_ns()
        parent = trace.set_span_in_context(call.span)
        span = self.tracer.start_span(name, context=parent, start_time=end - int(seconds * 1e9))
        span.end(end_time=end)

    def batch(self, size: int) -> None:
        return None

    def admission_wait(self, seconds: float) -> None:
        self.stage("admission_wait", seconds)

    def health(self, component: str, ok: bool) -> None:
        return None

    def close(self) -> None:
        self.provider.shutdown()
