# opsh in a container: for Kubernetes CronJobs and `opsh schedule`.
#   docker build -t opsh .
#   docker run --rm opsh help
# Scripts live in /opt/opsh/scripts (mount a ConfigMap over it, see
# docs/kubernetes.md); the process runs as the non-root user 10001.

FROM rust:1.95-bookworm AS builder
WORKDIR /src
# Dependencies first, so a source change does not refetch them.
# The manifests name every target, so each needs a file to load them.
COPY Cargo.toml Cargo.lock ./
COPY crates/kube-testserver/Cargo.toml crates/kube-testserver/
RUN mkdir -p src crates/kube-testserver/src tests/integration examples \
    && echo 'fn main() {}' > src/main.rs \
    && touch src/lib.rs crates/kube-testserver/src/lib.rs tests/integration/main.rs examples/redis_fanout.rs \
    && cargo fetch --locked \
    && rm -rf src crates tests examples
COPY src src
COPY crates crates
COPY stdlib stdlib
COPY tests tests
COPY examples examples
# The dist profile (link-time optimisation), without the sandbox and its
# Kubernetes API test server.
RUN cargo build --profile dist --locked --no-default-features --bin opsh \
    && strip target/dist/opsh

FROM debian:bookworm-slim
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates tini \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --system --gid 10001 opsh \
    && useradd --system --uid 10001 --gid 10001 --home-dir /home/opsh --create-home opsh \
    && mkdir -p /var/lib/opsh && chown opsh:opsh /var/lib/opsh
COPY --from=builder /src/target/dist/opsh /usr/local/bin/opsh
COPY scripts /opt/opsh/scripts
WORKDIR /opt/opsh
# State (locks, audit log) in one writable place; no colours in logs.
ENV XDG_STATE_HOME=/var/lib/opsh \
    NO_COLOR=1
USER 10001:10001
# tini reaps `opsh schedule`'s children if opsh is not PID 1's only process,
# and passes SIGTERM on for a graceful stop.
ENTRYPOINT ["/usr/bin/tini", "--", "/usr/local/bin/opsh"]
CMD ["help"]
