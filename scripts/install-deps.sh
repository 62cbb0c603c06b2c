#!/usr/bin/env bash
# Installs and starts what the tests and the bench need when it is missing:
# Debian packages (Docker, compose, certbot, pebble, peers, tools) and the
# Docker daemon. Idempotent; prints only what it changes.
set -euo pipefail

usage() { echo "usage: scripts/install-deps.sh [--check]  (--check: report what is missing, change nothing)"; }
check_only=0
case "${1:-}" in
  --check) check_only=1 ;;
  -h|--help) usage; exit 0 ;;
  "") ;;
  *) usage >&2; exit 2 ;;
esac

# command -> Debian package that provides it
declare -A wanted=(
  [docker]=docker.io
  [docker-compose]=docker-compose
  [ip]=iproute2
  [tc]=iproute2
  [setcap]=libcap2-bin
  [getcap]=libcap2-bin
  [setpriv]=util-linux
  [certbot]=certbot
  [pebble]=pebble
  [pebble-challtestsrv]=pebble
  [wrk]=wrk
  [h2load]=nghttp2-client
  [nginx]=nginx
  [testssl]=testssl.sh
  [chromium]=chromium
  [jq]=jq
  [shellcheck]=shellcheck
  [systemd-analyze]=systemd
  [iptables]=iptables
  [curl]=curl
  [ping]=iputils-ping
  [taskset]=util-linux
  [openssl]=openssl
  [strip]=binutils
)

missing=()
for cmd in "${!wanted[@]}"; do
  if ! command -v "$cmd" >/dev/null 2>&1 && ! [ -x "/usr/sbin/$cmd" ] && ! [ -x "/usr/bin/$cmd" ]; then
    missing+=("${wanted[$cmd]}")
  fi
done
mapfile -t missing < <(printf '%s\n' "${missing[@]}" | sort -u | sed '/^$/d')

if [ "${#missing[@]}" -gt 0 ]; then
  if [ "$check_only" = 1 ]; then
    echo "missing packages: ${missing[*]} (install: apt-get install ${missing[*]})"
  else
    if [ "$(id -u)" != 0 ]; then
      echo "error: packages missing (${missing[*]}) and not root: run 'sudo apt-get install ${missing[*]}'" >&2
      exit 1
    fi
    echo "installing: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  fi
fi

if ! docker info >/dev/null 2>&1; then
  if [ "$check_only" = 1 ]; then
    echo "the Docker daemon is not reachable (start it: service docker start)"
    exit 0
  fi
  echo "starting the Docker daemon"
  service docker start >/dev/null 2>&1 || systemctl start docker >/dev/null 2>&1 || {
    nohup dockerd >/var/log/hopless-dockerd.log 2>&1 &
  }
  for _ in $(seq 1 60); do
    docker info >/dev/null 2>&1 && break
    sleep 1
  done
  docker info >/dev/null 2>&1 || { echo "error: the Docker daemon did not start; see /var/log/hopless-dockerd.log" >&2; exit 1; }
fi
