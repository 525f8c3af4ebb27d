"""Who is calling, from the TLS session (mutual TLS) or the --insecure development mode."""

from __future__ import annotations

from functools import lru_cache

import grpc

from fvs.access.model import Caller
from fvs.pki import fingerprint_of_pem


@lru_cache(maxsize=4096)
def _fingerprint(pem: bytes) -> str:
    return fingerprint_of_pem(pem)


def caller_of(context: grpc.aio.ServicerContext[object, object], insecure: bool) -> Caller:
    peer = context.peer() or ""
    if insecure:
        return Caller(insecure_dev=True, peer=peer)
    pems = list(context.auth_context().get("x509_pem_cert") or [])
    if not pems:
        return Caller(peer=peer)
    return Caller(fingerprint=_fingerprint(bytes(pems[0])), peer=peer)
