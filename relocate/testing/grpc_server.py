"""The part the local fakes of Google's gRPC APIs share: serving their methods on a port.

A fake subclasses ``LocalGrpcServer``, names its service (``SERVICE_NAME``) and returns its
method handlers from ``handlers()``; the real Google client talks to it through a
plaintext channel on ``endpoint``.
"""

from __future__ import annotations

from concurrent import futures
from typing import TYPE_CHECKING

import grpc

if TYPE_CHECKING:
    from typing import Self  # Python 3.11+, annotations only


class LocalGrpcServer:
    """Serves one gRPC service on a free port of 127.0.0.1.

    Attributes:
        port: The TCP port, once started.
    """

    #: The fully qualified gRPC service name, e.g. ``google.cloud.kms.v1.KeyManagementService``.
    SERVICE_NAME: str

    def __init__(self) -> None:
        self.port: int | None = None
        self._server: grpc.Server | None = None

    def handlers(self) -> dict[str, grpc.RpcMethodHandler]:
        """Method name -> handler (``grpc.unary_unary_rpc_method_handler``)."""
        raise NotImplementedError

    @property
    def endpoint(self) -> str:
        """``127.0.0.1:PORT``, what the clients are pointed at."""
        if self.port is None:
            raise RuntimeError("the server is not started")
        return f"127.0.0.1:{self.port}"

    def start(self) -> Self:
        """Listen on a free port of 127.0.0.1."""
        server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
        server.add_generic_rpc_handlers(
            (grpc.method_handlers_generic_handler(self.SERVICE_NAME, self.handlers()),)
        )
        self.port = server.add_insecure_port("127.0.0.1:0")
        server.start()
        self._server = server
        return self

    def stop(self) -> None:
        """Stop serving (in-flight calls are cancelled)."""
        if self._server is not None:
            self._server.stop(grace=None).wait()
            self._server = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
