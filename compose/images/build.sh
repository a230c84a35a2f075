#!/usr/bin/env bash
# Build the compose stack's images from Debian packages, PyPI and Maven Central, with podman (`make images`):
#
#   localhost/bcfwatch-debian:bookworm       Debian bookworm minbase, made with debootstrap and imported
#   localhost/bcfwatch:local                 bcfwatch (compose/Dockerfile): Debian's Python 3.11, pinned packages
#   localhost/bcfwatch-kafka:3.9.2           Kafka: Debian's JDK 17 and the jars `bcfwatch kafka fetch` uses
#   localhost/bcfwatch-prometheus:bookworm   Debian's prometheus
#   localhost/bcfwatch-alertmanager:bookworm Debian's prometheus-alertmanager
#
# The base is cached: its debootstrap tarball under ~/.cache/bcfwatch/images, the image in podman's storage.
# The others reuse podman's layer cache, so running it again after a code change rebuilds only the code layer.
# Needs root, podman, runc and debootstrap (scripts/setup.sh installs them). Grafana cannot be
# built here (not packaged by Debian); the stack runs without it (docs/operations.md).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
export CONTAINERS_CONF=${CONTAINERS_CONF:-$PWD/compose/podman/containers.conf}
MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
BASE=localhost/bcfwatch-debian:bookworm
KAFKA_VERSION=3.9.2
cache=${XDG_CACHE_HOME:-$HOME/.cache}/bcfwatch/images
say() { echo "images: $*" >&2; }
fail() { echo "images: $*" >&2; exit 1; }
for tool in podman debootstrap; do
  command -v "$tool" >/dev/null || fail "$tool is not installed: run \`sudo bash scripts/setup.sh\`"
done
[[ $(id -u) -eq 0 ]] || fail "run as root (debootstrap, and podman's bridge network for the stack)"

if ! podman image exists "$BASE"; then
  tarball=$cache/debian-bookworm-minbase.tar
  if [[ ! -s $tarball ]]; then
    mkdir -p "$cache"
    rootfs=$(mktemp -d)
    say "debootstrap --variant=minbase bookworm from $MIRROR (about 30 s)"
    debootstrap --variant=minbase bookworm "$rootfs" "$MIRROR" >/dev/null
    # No service is started by a package's install script inside an image, and apt keeps no cache.
    printf '#!/bin/sh\nexit 101\n' >"$rootfs/usr/sbin/policy-rc.d"
    chmod 0755 "$rootfs/usr/sbin/policy-rc.d"
    printf 'APT::Install-Recommends "false";\nAPT::Install-Suggests "false";\n' >"$rootfs/etc/apt/apt.conf.d/90bcfwatch"
    rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/*
    tar --numeric-owner -C "$rootfs" -cf "$tarball.part" .
    mv "$tarball.part" "$tarball"
    rm -rf "$rootfs"
  fi
  say "importing $BASE"
  podman import --quiet --change 'CMD ["/bin/bash"]' "$tarball" "$BASE" >/dev/null
fi

build() {  # build TAG CONTAINERFILE CONTEXT [PODMAN BUILD OPTIONS...]
  local tag=$1 file=$2 context=$3
  shift 3
  say "building $tag"
  podman build --quiet --layers --build-arg "BASE=$BASE" "$@" -t "$tag" -f "$file" "$context" >/dev/null
}

# pip reaches PyPI over TLS: trust what the host trusts (a TLS-intercepting proxy's CA, where there is one),
# mounted for the build only.
host_ca=${PIP_CERT:-/etc/ssl/certs/ca-certificates.crt}
ca_args=()
[[ -s $host_ca ]] && ca_args=(--volume "$host_ca:/run/host-ca.crt:ro" --build-arg CA_BUNDLE=/run/host-ca.crt)
build localhost/bcfwatch:local compose/Dockerfile . "${ca_args[@]}"

libs=${XDG_CACHE_HOME:-$HOME/.cache}/bcfwatch/kafka-$KAFKA_VERSION/libs
[[ -d $libs ]] || .venv/bin/bcfwatch kafka fetch >/dev/null
context=$(mktemp -d)
trap 'rm -rf "$context"' EXIT
cp -r compose/images/kafka/. "$context/"
cp compose/kafka/env-to-properties.sh "$context/bin/"
mkdir -p "$context/libs"
cp "$libs"/*.jar "$context/libs/"
build "localhost/bcfwatch-kafka:$KAFKA_VERSION" "$context/Containerfile" "$context"

build localhost/bcfwatch-prometheus:bookworm compose/images/prometheus/Containerfile compose/images/prometheus
build localhost/bcfwatch-alertmanager:bookworm compose/images/alertmanager/Containerfile compose/images/alertmanager
say "done: $(podman images --filter reference='localhost/bcfwatch*' --format '{{.Repository}}:{{.Tag}}' | tr '\n' ' ')"
