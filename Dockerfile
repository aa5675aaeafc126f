# syntax=docker/dockerfile:1
#
# longwave image: the release binary on distroless, non-root, read-only-root friendly.
#
#   docker build --build-arg LONGWAVE_GIT_SHA=$(git rev-parse HEAD) -t longwave .
#   docker run --rm --read-only --tmpfs /tmp -p 9000:9000 -e SQS_QUEUE_URL=… longwave
#
# The binary is exactly what CI builds and smoke-tests: `cargo build --release --locked` for
# x86_64-unknown-linux-gnu with the committed Cargo.lock, on Debian 12 (bookworm) glibc. CI runs
# the same command (scripts/test.sh) and then `longwave --version` and `longwave demo` on it.
# glibc, not musl: the DSP runs on a rayon pool and musl's allocator serialises threads
# (../shared/ops-reference.md §7.3); distroless/cc carries the glibc, libgcc_s and CA
# certificates the binary needs (it links nothing else: `ldd target/release/longwave`).

# ------------------------------------------------------------------------------------- builder
FROM rust:1.95-bookworm AS builder
WORKDIR /src
# Only what the build reads (Cargo.toml names the benches, so they come too); .dockerignore keeps
# target/ and the rest out of the context. scripts/build-image.sh builds this file with buildah
# and runs the image read-only as 65532 against the local SQS/S3 server.
COPY Cargo.toml Cargo.lock ./
COPY src ./src
COPY benches ./benches
# The workspace names the load-test harness as a member: cargo reads its manifest and sources to
# load the workspace, though only the root package (the default member) is built.
COPY loadtest/Cargo.toml ./loadtest/
COPY loadtest/src ./loadtest/src
# Read at compile time by option_env!("LONGWAVE_GIT_SHA") (longwave_build_info's git_sha label);
# cargo rebuilds when it changes.
ARG LONGWAVE_GIT_SHA=unknown
ENV LONGWAVE_GIT_SHA=${LONGWAVE_GIT_SHA}
# Cache mounts keep the registry and the dependency builds between image builds; the binary is
# copied out of the cached target dir because cache mounts are not part of the image. The copy
# drops the DWARF line tables the release profile keeps for profiling (116 of the binary's
# 146 MB); the code is byte for byte what CI tested, and the symbol table stays, so a
# backtrace still names its functions.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked \
    && mkdir -p /out \
    && objcopy --strip-debug target/release/longwave /out/longwave \
    && chmod 0755 /out/longwave

# ------------------------------------------------------------------------------------- runtime
# :nonroot runs as uid/gid 65532; the ECS task definition sets the same user explicitly.
FROM gcr.io/distroless/cc-debian12:nonroot
ARG LONGWAVE_GIT_SHA=unknown
LABEL org.opencontainers.image.title="longwave" \
      org.opencontainers.image.description="Streaming audio processor and SQS worker" \
      org.opencontainers.image.revision="${LONGWAVE_GIT_SHA}"
COPY --from=builder /out/longwave /usr/local/bin/longwave
# The root filesystem may be read-only (ECS readonlyRootFilesystem, docker --read-only): the
# worker streams S3 to S3 and writes nothing locally; anything that needs scratch space uses
# TMPDIR, which the task definition mounts as a volume.
ENV TMPDIR=/tmp
USER 65532:65532
# Prometheus metrics (/metrics) of `longwave worker --metrics-addr 0.0.0.0:9000`.
EXPOSE 9000
ENTRYPOINT ["longwave"]
CMD ["worker"]
