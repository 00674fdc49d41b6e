# Build: bundled SQLite, libpq, OpenSSL (for TLS to PostgreSQL) and jemalloc, so only a C
# compiler, make and perl are needed (all in the rust image).
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
# jemalloc's build-time defaults (see the file).
COPY .cargo ./.cargo
COPY src ./src
COPY migrations ./migrations
COPY tests ./tests
COPY benches ./benches
COPY openapi ./openapi
RUN cargo build --release --locked --bin tokenmint

FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates curl \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --home /var/lib/tokenmint --create-home tokenmint
COPY --from=build /src/target/release/tokenmint /usr/local/bin/tokenmint
USER tokenmint
WORKDIR /var/lib/tokenmint
ENV TOKENMINT_BIND=0.0.0.0:8080
EXPOSE 8080 9100
ENTRYPOINT ["tokenmint"]
CMD ["serve"]
