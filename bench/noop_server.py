"""A JourneyConversionsService that does nothing: RecordTouchpoint answers at once, echoing the
touchpoint; every other RPC is the generated UNIMPLEMENTED. bench.flood runs it in a process of
its own, as `journey-conversions serve` runs, to measure what grpc.aio unary calls cost on this
machine without our code or a database: the ceiling our unary writes are compared with.

    .venv/bin/python -m bench.noop_server   # prints its port, serves until SIGTERM or SIGINT
"""

from __future__ import annotations

import argparse
import asyncio
import signal
from typing import Any

import grpc
import uvloop
from journeys.conversions.v1 import service_pb2 as pb
from journeys.conversions.v1 import service_pb2_grpc


class NoopServicer(service_pb2_grpc.JourneyConversionsServiceServicer):
    async def RecordTouchpoint(
        self,
        request: pb.RecordTouchpointRequest,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> pb.RecordTouchpointResponse:
        return pb.RecordTouchpointResponse(touchpoint=request.touchpoint)


async def run(listen: str) -> None:
    """Serves on `listen`, prints the bound port on stdout, and stops on SIGTERM or SIGINT."""
    server = grpc.aio.server()
    # The stubs mark every RPC abstract; at run time the generated base answers UNIMPLEMENTED.
    servicer = NoopServicer()  # type: ignore[abstract]
    service_pb2_grpc.add_JourneyConversionsServiceServicer_to_server(servicer, server)
    port = server.add_insecure_port(listen)
    await server.start()
    print(port, flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    await stop.wait()
    await server.stop(grace=1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--listen", default="127.0.0.1:0", help="port 0 picks a free port")
    # The loop `journey-conversions serve` runs on by default (server.run).
    uvloop.run(run(parser.parse_args().listen))


if __name__ == "__main__":
    main()
