# schemagate's image: one static binary on `scratch`, run as a non-root user.
#   docker build -t schemagate .
# An app ships its own migrations on top of it (see the README):
#   FROM schemagate
#   COPY migrations/ /migrations/
# The base image is a build argument, so a mirror or a pinned digest needs no edit here:
#   docker build --build-arg RUST_IMAGE=mirror.example/rust:1.95-slim-bookworm .
ARG RUST_IMAGE=rust:1.95-slim-bookworm

FROM ${RUST_IMAGE} AS build
# musl-gcc compiles ring's C code for the static musl target; ca-certificates is the
# bundle the runtime image gets (schemagate's TLS reads the system bundle).
RUN apt-get update \
 && apt-get install -y --no-install-recommends musl-tools ca-certificates \
 && rm -rf /var/lib/apt/lists/*
RUN rustup target add x86_64-unknown-linux-musl
WORKDIR /src
# Dependencies first, in a layer of their own, so editing src/ does not rebuild them.
# Cargo.toml names benchmarks: cargo wants their files, though no build here makes them,
# so each `[[bench]]` name gets an empty one.
COPY Cargo.toml Cargo.lock ./
RUN mkdir src benches && echo 'fn main() {}' > src/main.rs && touch src/lib.rs \
 && for bench in $(sed -n '/^\[\[bench\]\]/,/^name/s/^name *= *"\(.*\)"/\1/p' Cargo.toml); do \
      echo 'fn main() {}' > "benches/$bench.rs"; done \
 && cargo build --release --locked --target x86_64-unknown-linux-musl \
 && rm -r src
COPY src/ src/
# touch: the copied files keep their (older) times, and cargo would keep the dummy build.
RUN touch src/main.rs src/lib.rs \
 && cargo build --release --locked --target x86_64-unknown-linux-musl \
 && cp target/x86_64-unknown-linux-musl/release/schemagate /schemagate \
 && mkdir /migrations

FROM scratch
COPY --from=build /etc/ssl/certs/ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
COPY --from=build /schemagate /usr/local/bin/schemagate
# Empty on purpose: COPY adds to a folder and scratch has no `rm`, so example migrations
# here would end up in every app's database. The app COPYs its own; compose mounts them.
COPY --from=build /migrations /migrations
ENV PATH=/usr/local/bin \
    SCHEMAGATE_MIGRATIONS=/migrations
# The uid/gid distroless calls "nonroot"; scratch has no /etc/passwd, so numbers.
USER 65532:65532
ENTRYPOINT ["schemagate"]
CMD ["up"]
