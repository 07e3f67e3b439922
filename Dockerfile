# journey-conversions: the gRPC service, as a container.
#
# Run it with DATABASE_URL pointing at your Postgres:
#   docker run -e DATABASE_URL=postgresql://user:pass@db:5432/jc -p 50051:50051 -p 9464:9464 IMAGE
# Without DATABASE_URL the server starts an embedded Postgres inside the container, in
# JC_DATA_DIR: fine for a quick try, but its data lives and dies with the container (mount a
# volume on JC_DATA_DIR to keep it) and it is one process only. Containers are expected to get
# DATABASE_URL. Every other setting is a JC_* variable (see the README's settings table).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

RUN useradd --create-home --uid 10001 --shell /usr/sbin/nologin journeys

WORKDIR /src
# The generated client package first: the service depends on it.
COPY clients/python clients/python
COPY pyproject.toml ./
COPY service service
RUN pip install ./clients/python .

USER journeys
WORKDIR /home/journeys

# Listen on every interface inside the container; log JSON lines; finish in-flight calls
# within Docker's default 10 s stop timeout.
ENV JC_LISTEN=0.0.0.0:50051 \
    JC_METRICS_LISTEN=0.0.0.0:9464 \
    JC_LOG_FORMAT=json \
    JC_GRACE_SECONDS=8 \
    JC_DATA_DIR=/home/journeys/pgdata

EXPOSE 50051 9464

# Healthy when the gRPC health service says SERVING (it says NOT_SERVING while shutting down).
HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import os, sys, grpc; from grpc_health.v1 import health_pb2 as h, health_pb2_grpc as g; port = os.environ.get('JC_LISTEN', '0.0.0.0:50051').rsplit(':', 1)[1]; stub = g.HealthStub(grpc.insecure_channel('127.0.0.1:' + port)); sys.exit(stub.Check(h.HealthCheckRequest(), timeout=3).status != h.HealthCheckResponse.SERVING)"]

STOPSIGNAL SIGTERM
CMD ["journey-conversions", "serve"]
