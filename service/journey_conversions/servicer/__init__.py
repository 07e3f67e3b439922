"""The gRPC servicer: protobuf in, domain values through the store, protobuf out.

Each method parses and validates its request (parse), runs one transaction (store), and
renders the result (render). Errors travel as ServiceError and become statuses in calls.rpc.
The RPCs live in one module per resource; this class joins them for registration.
"""

from __future__ import annotations

from journeys.conversions.v1 import service_pb2_grpc

from journey_conversions.servicer.ingest import IngestRpcs
from journey_conversions.servicer.journeys import JourneyRpcs
from journey_conversions.servicer.participation import ParticipationRpcs
from journey_conversions.servicer.reports import ReportRpcs
from journey_conversions.servicer.steps import StepRpcs
from journey_conversions.servicer.stream import StreamRpcs
from journey_conversions.servicer.streaming import StreamingRpcs

__all__ = ["JourneyConversionsServicer"]


class JourneyConversionsServicer(
    JourneyRpcs,
    ParticipationRpcs,
    IngestRpcs,
    StepRpcs,
    ReportRpcs,
    StreamRpcs,
    StreamingRpcs,
    service_pb2_grpc.JourneyConversionsServiceServicer,
):
    """Every RPC of JourneyConversionsService; the resource classes come first so that their
    methods, not the generated UNIMPLEMENTED stubs, answer."""
