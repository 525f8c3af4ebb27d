"""OpenTelemetry spans exported by OTLP/gRPC from a real `fvs serve` process to a collector
run here (the real OTLP trace service over a real channel): one span per call carrying the
request id its audit record has, a child span per stage."""

from __future__ import annotations

import signal
import threading
from concurrent import futures
from pathlib import Path
from typing import Any

import grpc
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc

from fvs.api.client import FvsClient
from fvs.audit.log import read_records
from fvs.audit.trail import audit_path
from tests.conftest import CITIZEN_A, photo
from tests.e2e.conftest import ServerProcess

REQUEST_ID = "trace-me-0001"


class Collector(trace_service_pb2_grpc.TraceServiceServicer):  # type: ignore[misc]
    def __init__(self) -> None:
        self.spans: list[Any] = []
        self.lock = threading.Lock()

    def Export(self, request: Any, context: Any) -> Any:  # noqa: N802 - the proto's name
        with self.lock:
            for resource in request.resource_spans:
                for scope in resource.scope_spans:
                    self.spans.extend(scope.spans)
        return trace_service_pb2.ExportTraceServiceResponse()


def test_spans_per_call_and_stage_reach_an_otlp_collector(tmp_path: Path) -> None:
    collector = Collector()
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    trace_service_pb2_grpc.add_TraceServiceServicer_to_server(collector, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    data = tmp_path / "data"
    fvs = ServerProcess(data, args=("--otlp-endpoint", f"http://127.0.0.1:{port}"))
    try:
        fvs.wait_serving()
        with FvsClient(fvs.address) as client:
            client.enroll(CITIZEN_A, photo("obama.jpg"), create_if_missing=True)
            client.verify(CITIZEN_A, photo("obama2.jpg"), "KYC", "C-1", request_id=REQUEST_ID)
        fvs.signal(signal.SIGTERM)  # the provider flushes its batch on shutdown
        assert fvs.wait(60) == 0
    finally:
        fvs.stop()
        server.stop(None)
    attrs = {
        s.span_id: {a.key: a.value.string_value for a in s.attributes} for s in collector.spans
    }
    verify = [s for s in collector.spans if s.name == "fvs.Verify"]
    assert len(verify) == 1 and attrs[verify[0].span_id]["fvs.request_id"] == REQUEST_ID
    assert attrs[verify[0].span_id]["fvs.agency"] == "DEV"
    child_spans = [s for s in collector.spans if s.parent_span_id == verify[0].span_id]
    children = {s.name for s in child_spans}
    assert {"decode", "detect", "align", "quality", "embed", "match", "gate"} <= children
    assert {"audit_append", "audit_flush"} <= children
    assert all(s.trace_id == verify[0].trace_id for s in child_spans)
    enroll = [s for s in collector.spans if s.name == "fvs.Enroll"]
    assert len(enroll) == 1
    # the request id links the trace to the call's audit record
    audited = {str(r["request_id"]) for r in read_records(audit_path(data))}
    assert REQUEST_ID in audited and attrs[enroll[0].span_id]["fvs.request_id"] in audited
