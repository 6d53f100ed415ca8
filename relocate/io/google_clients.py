"""Google Cloud API clients (KMS, Secret Manager) pointed at Google or at a local server."""

from __future__ import annotations

import ipaddress
from typing import Any


def is_loopback(endpoint: str) -> bool:
    """Whether ``HOST:PORT`` names this machine (a local emulator, as in the tests)."""
    host = endpoint.rpartition(":")[0] if ":" in endpoint else endpoint
    host = host.strip("[]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def google_client(client_class: type, transport_class: type, endpoint: str | None) -> Any:
    """A client of ``client_class``.

    ``endpoint`` None means Google's endpoint with Application Default Credentials. A
    loopback ``HOST:PORT`` gets a plaintext gRPC channel (``transport_class``) and
    anonymous credentials; any other endpoint keeps TLS and ADC.
    """
    if endpoint is None:
        return client_class()
    if is_loopback(endpoint):
        import grpc
        from google.auth.credentials import AnonymousCredentials

        transport = transport_class(
            host=endpoint,
            credentials=AnonymousCredentials(),
            channel=grpc.insecure_channel(endpoint),
        )
        return client_class(transport=transport)
    return client_class(client_options={"api_endpoint": endpoint})
