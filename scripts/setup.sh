#!/usr/bin/env bash
# Install everything bcfwatch needs on a fresh Debian machine: system packages
# (Java 17, Maven, Prometheus, Alertmanager, Chromium and podman from Debian), a virtualenv with the pinned Python packages, and the Kafka
# broker jars from Maven Central. Safe to run again: each step is skipped when done.
# With --python-only (make lint, make test-unit) only the virtualenv is made: no system packages, no Kafka.
set -euo pipefail
cd "$(dirname "$0")/.."
python_only=false
[ "${1:-}" = "--python-only" ] && python_only=true

apt_packages=()
if ! $python_only; then
command -v java >/dev/null 2>&1 || apt_packages+=(openjdk-17-jre-headless)
command -v mvn >/dev/null 2>&1 || apt_packages+=(maven)
command -v promtool >/dev/null 2>&1 || apt_packages+=(prometheus)
command -v amtool >/dev/null 2>&1 || apt_packages+=(prometheus-alertmanager)
command -v chromium >/dev/null 2>&1 || apt_packages+=(chromium)
command -v chromedriver >/dev/null 2>&1 || apt_packages+=(chromium-driver)  # the report's browser test (Selenium)
command -v openssl >/dev/null 2>&1 || apt_packages+=(openssl)  # test certificates (tests/broker/monitors/test_smtp_tls.py)
# The compose stack with podman (make images, compose/stack.py, tests/containers): runc, as crun fails on this
# kind of host's cgroups; debootstrap makes the images' Debian base.
command -v podman >/dev/null 2>&1 || apt_packages+=(podman)
command -v runc >/dev/null 2>&1 || apt_packages+=(runc)
command -v debootstrap >/dev/null 2>&1 || apt_packages+=(debootstrap)
# The services find each other by name (kafka-1, kafka-2, ...) through podman's DNS: with the CNI network backend
# (podman 4.3 on Debian 12) that is the dnsname plugin, only recommended by podman, so absent after a
# --no-install-recommends install (harmless with netavark, whose DNS is aardvark-dns).
if [ -z "$(find /usr/lib/cni /usr/libexec/cni /usr/local/lib/cni /usr/local/libexec/cni /opt/cni/bin \
             -name dnsname 2>/dev/null)" ]; then
  apt_packages+=(golang-github-containernetworking-plugin-dnsname)
fi
fi
command -v python3 >/dev/null 2>&1 || apt_packages+=(python3 python3-venv)
if [ "${#apt_packages[@]}" -gt 0 ]; then
  echo "setup: installing ${apt_packages[*]} with apt-get"
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${apt_packages[@]}"
fi

if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
fi
if [ ! -f .venv/.installed ] || [ pyproject.toml -nt .venv/.installed ]; then
  echo "setup: installing Python packages into .venv"
  .venv/bin/pip install -q --upgrade pip
  .venv/bin/pip install -q -e '.[dev]'
  touch .venv/.installed
fi

$python_only || .venv/bin/bcfwatch kafka fetch
