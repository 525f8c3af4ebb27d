"""Operations: the per-call context that logs, metrics and traces share, the hooks the lower
layers report stage timings and health through, and their exporters (Prometheus metrics,
structured logs, OpenTelemetry traces). Nothing here imports grpc; the gRPC side is
``fvs.api.observe``."""
