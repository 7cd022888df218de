# simfleet operator image: a static (musl) binary on a distroless base, running as non-root.
# It builds without the `dev` feature, so it has no `simfleet dev` or `simfleet simulator`, and
# neither the carrier simulator nor the sandbox API server (tests/production_build.rs checks).
# Build: docker build -t simfleet:dev .   (not built on the project's CI machines, which have no
# container engine; the chart's tests cover the Deployment that runs it.)

FROM rust:1-alpine AS build
# ring (rustls' crypto) needs a C compiler; musl is Alpine's libc, so the binary is static.
RUN apk add --no-cache build-base
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY crates ./crates
COPY src ./src
COPY benches ./benches
RUN cargo build --release --locked --no-default-features --bin simfleet \
    && strip target/release/simfleet

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /src/target/release/simfleet /simfleet
# distroless "nonroot" is uid/gid 65532, the user the chart's securityContext expects.
USER 65532:65532
EXPOSE 9090
ENTRYPOINT ["/simfleet"]
CMD ["run", "--metrics-addr=0.0.0.0:9090"]
