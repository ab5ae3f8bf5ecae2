# Warden's container image: a release build, then a slim runtime that runs as a non-root user.
#   docker build -t warden .
#   docker run -p 8000:8000 -e JWT_SECRET=... -e DATABASE_URL=postgres://... warden
# compose.yaml runs it with PostgreSQL.

FROM rust:1.95-slim-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked --package warden

FROM debian:bookworm-slim
# curl for the health check; CA certificates for TLS to a managed PostgreSQL (sslmode=verify-full
# with the system's roots). Debian's security updates matter more here than pinned versions.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates curl \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --home-dir /var/lib/warden --create-home warden
COPY --from=build /src/target/release/warden /usr/local/bin/warden
USER 10001
# The SQLite default (warden.db) and its generated secret live here when no DATABASE_URL is set.
WORKDIR /var/lib/warden
VOLUME ["/var/lib/warden"]
ENV WARDEN_ADDR=0.0.0.0:8000 \
    LOG_FORMAT=json
EXPOSE 8000
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s --retries=3 \
    CMD ["curl", "--fail", "--silent", "--show-error", "http://127.0.0.1:8000/health/ready"]
ENTRYPOINT ["/usr/local/bin/warden"]
CMD ["serve"]
