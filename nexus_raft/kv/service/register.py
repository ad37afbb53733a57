"""Registering the KV servicer so that undecodable requests get ``kv.proto``'s answer.

The generated ``add_KVServicer_to_server`` decodes each request before the
servicer runs; bytes that are not the request message make gRPC log a
traceback and answer a raw ``UNKNOWN``, once per request, which a careless or
hostile client can repeat at will. ``kv.proto`` promises failures in the
response's ``error`` field instead. :func:`add_checked_servicer` registers
the same methods with a decoder that never raises: an undecodable request
reaches a wrapper that answers ``INVALID_ARGUMENT`` in ``error`` (for
``Watch``, one response carrying the error; in a request stream such as
``Pipeline``, the answers so far, then the status ``INVALID_ARGUMENT``),
logged at WARNING, rate-limited.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import AsyncIterator, Callable
from typing import Any

import grpc
from google.protobuf.message import DecodeError  # type: ignore[import-untyped]

from nexus_raft.kv.service.watch import write_all
from nexus_raft.kv.wire import kv_pb2
from nexus_raft.transport.ratelimit import LogLimiter

__all__ = ["Undecodable", "add_checked_servicer"]

_log = logging.getLogger("nexus_raft.kv.service.kv")
_warn = LogLimiter(_log)

_SERVICE = kv_pb2.DESCRIPTOR.services_by_name["KV"]


class Undecodable:
    """What the decoder hands the servicer for bytes it could not decode."""

    __slots__ = ("reason", "size")

    def __init__(self, size: int, reason: str) -> None:
        self.size = size
        self.reason = reason


def _decoder(message: Any) -> Callable[[bytes], Any]:
    parse = message.FromString

    def decode(data: bytes) -> Any:
        try:
            return parse(data)
        except (DecodeError, ValueError, TypeError) as exc:
            return Undecodable(len(data), " ".join(str(exc).split()) or type(exc).__name__)

    return decode


def _error(method: str, bad: Undecodable, context: Any) -> Any:
    peer = context.peer() if context is not None else "?"
    _warn.warning(("undecodable", method), "undecodable %s request from %s (%d bytes): %s",
                  method, peer, bad.size, bad.reason)  # fmt: skip
    return kv_pb2.Error(
        code=kv_pb2.INVALID_ARGUMENT,
        message=f"could not decode the {method} request ({bad.size} bytes): {bad.reason}",
    )


def _unary(method: str, impl: Callable[..., Any], response: Any) -> Callable[..., Any]:
    async def handle(request: Any, context: Any) -> Any:
        if isinstance(request, Undecodable):
            return response(error=_error(method, request, context))
        return await impl(request, context)

    return handle


def _stream(method: str, impl: Callable[..., Any], response: Any) -> Callable[..., Any]:
    if not inspect.isasyncgenfunction(impl):
        # The method writes with context.write (gRPC forbids mixing it with yield).
        async def write(request: Any, context: Any) -> None:
            if isinstance(request, Undecodable):
                await context.write(response(error=_error(method, request, context)))
                return
            await impl(request, context)

        return write

    async def handle(request: Any, context: Any) -> AsyncIterator[Any]:
        if isinstance(request, Undecodable):
            yield response(error=_error(method, request, context))
            return
        async for item in impl(request, context):
            yield item

    return handle


def _bidi(method: str, impl: Callable[..., Any]) -> Callable[..., Any]:
    """A request stream: an undecodable message ends the call (INVALID_ARGUMENT status)."""

    async def handle(requests: AsyncIterator[Any], context: Any) -> AsyncIterator[Any]:
        bad: list[Undecodable] = []

        async def checked() -> AsyncIterator[Any]:
            async for request in requests:
                if isinstance(request, Undecodable):
                    bad.append(request)
                    return
                yield request

        async for item in impl(checked(), context):
            yield item
        if bad:
            error = _error(method, bad[0], context)
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, error.message)

    return handle


def _written(impl: Callable[..., Any], policy: Any) -> Callable[..., Any]:
    """``Watch`` sent with ``context.write`` and the policy's send timeout."""

    async def watch(request: Any, context: Any) -> None:
        await write_all(impl(request, context), context, policy)

    return watch


def add_checked_servicer(servicer: Any, server: grpc.aio.Server) -> None:
    """Serve ``servicer``'s ``nexus.kv.KV`` methods on ``server`` (see the module docstring)."""
    handlers: dict[str, grpc.RpcMethodHandler] = {}
    for method in _SERVICE.methods:
        request = getattr(kv_pb2, method.input_type.name)
        response = getattr(kv_pb2, method.output_type.name)
        impl = getattr(servicer, method.name)
        if method.client_streaming:
            if not method.server_streaming:
                raise TypeError(f"KV.{method.name}: client-streaming only is not supported here")
            handlers[method.name] = grpc.stream_stream_rpc_method_handler(
                _bidi(method.name, impl),
                request_deserializer=_decoder(request),
                response_serializer=response.SerializeToString,
            )
        elif method.server_streaming:
            policy = getattr(servicer, "watch_policy", None)
            if method.name == "Watch" and policy is not None:
                impl = _written(impl, policy)
            handlers[method.name] = grpc.unary_stream_rpc_method_handler(
                _stream(method.name, impl, response),
                request_deserializer=_decoder(request),
                response_serializer=response.SerializeToString,
            )
        else:
            handlers[method.name] = grpc.unary_unary_rpc_method_handler(
                _unary(method.name, impl, response),
                request_deserializer=_decoder(request),
                response_serializer=response.SerializeToString,
            )
    server.add_generic_rpc_handlers(
        (grpc.method_handlers_generic_handler(_SERVICE.full_name, handlers),)
    )
