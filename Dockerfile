# One image for the six services, the web gateway and the `aftersales` tool. Build stage: the
# workspace with a cached registry and target; run stage: the binaries on a slim
# Debian, as an unprivileged user. Pick the service with the command, e.g.
# `aftersales-repair` (docker-compose.yml, deploy/k8s do).
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --bins \
 && mkdir /out \
 && cp target/release/aftersales target/release/aftersales-warranty \
       target/release/aftersales-repair target/release/aftersales-logistics \
       target/release/aftersales-notification target/release/aftersales-parts \
       target/release/aftersales-support target/release/aftersales-gateway /out/

FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --no-create-home aftersales \
 && install -d -o 10001 -g 10001 -m 0700 /var/lib/aftersales
COPY --from=build /out/ /usr/local/bin/
USER 10001
# gRPC 50051-50056, metrics 9101-9106, the carrier webhook 8053, the web 8080.
EXPOSE 50051 50052 50053 50054 50055 50056 9101 9102 9103 9104 9105 9106 8053 8080
ENTRYPOINT []
CMD ["aftersales", "--help"]
