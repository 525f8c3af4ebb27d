"""FVS: a Face Verification Service (one-to-one face matching over gRPC)."""

__version__ = "0.1.0"
