#!/usr/bin/env bash
# Prepares a host for the blog container (uid/gid 2200): a group with gid
# 2200, group read on certbot's live/ and archive/ (0750) and private keys
# (0640), and the certbot deploy hook that reloads the container after a
# renewal. Idempotent; prints every change; never adds world permissions.
set -euo pipefail

usage() { echo "usage: scripts/setup-host.sh [--dry-run] [--letsencrypt-dir DIR (/etc/letsencrypt)] [--gid GID (2200)] [--group NAME (hopless-certs)]"; }
dry_run=0 dir=/etc/letsencrypt gid=2200 group=hopless-certs
while [ $# -gt 0 ]; do
  case "$1" in
    --dry-run) dry_run=1; shift ;;
    --letsencrypt-dir) dir="${2:?--letsencrypt-dir needs a value}"; shift 2 ;;
    --gid) gid="${2:?--gid needs a value}"; shift 2 ;;
    --group) group="${2:?--group needs a value}"; shift 2 ;;
    -h|--help) usage; exit 0 ;;
    *) usage >&2; exit 2 ;;
  esac
done
fail() { echo "error: $*" >&2; exit 1; }
hook_src="$(cd "$(dirname "$0")" && pwd)/certbot-deploy-hook.sh"
changes=0
# Runs "$@" (or only says it would) and counts the change.
change() {
  changes=$((changes + 1))
  if [ "$dry_run" = 1 ]; then echo "would: $*"; else echo "$*"; "$@"; fi
}

[[ "$gid" =~ ^[1-9][0-9]*$ ]] || fail "--gid '$gid' is not a positive number"
[ "$dry_run" = 1 ] || [ "$(id -u)" = 0 ] || fail "must run as root to change $dir (or use --dry-run)"
# certbot-shaped: live/ and archive/ directories, every live/NAME/*.pem a
# link into archive/.
if ! [ -d "$dir/live" ] || ! [ -d "$dir/archive" ]; then
  fail "$dir is not a certbot directory (no live/ and archive/); run certbot certonly first or pass --letsencrypt-dir"
fi
for link in "$dir"/live/*/privkey.pem; do
  [ -e "$link" ] || continue
  if ! [ -L "$link" ] || [[ "$(readlink "$link")" != ../../archive/* ]]; then
    fail "$link is not certbot's link into archive/; refusing to change $dir"
  fi
done

# The group: reuse whatever already has the gid, never move a name.
if existing="$(getent group "$gid")"; then
  echo "group ${existing%%:*} has gid $gid"
elif getent group "$group" >/dev/null; then
  fail "group $group exists with gid $(getent group "$group" | cut -d: -f3), not $gid; pass --group with another name or --gid"
else
  change groupadd --gid "$gid" "$group"
fi

# Group owner and mode, only where they differ.
grant() {
  local path="$1" mode="$2" now
  now="$(stat -c %g:%a "$path")"
  [ "${now%%:*}" = "$gid" ] || change chgrp "$gid" "$path"
  [ "${now##*:}" = "${mode#0}" ] || change chmod "$mode" "$path"
}
for d in "$dir/live" "$dir/archive" "$dir"/live/*/ "$dir"/archive/*/; do
  [ -d "$d" ] && grant "${d%/}" 0750
done
for key in "$dir"/archive/*/privkey*.pem; do
  [ -f "$key" ] && grant "$key" 0640
done

hook="$dir/renewal-hooks/deploy/hopless-blog"
[ -d "$(dirname "$hook")" ] || change install -d -m 0755 "$(dirname "$hook")"
cmp -s "$hook_src" "$hook" 2>/dev/null || change install -m 0755 "$hook_src" "$hook"

if [ "$changes" = 0 ]; then
  echo "nothing to change: $dir already grants gid $gid read and has the deploy hook"
elif [ "$dry_run" = 1 ]; then
  echo "dry run: $changes changes listed, none made"
else
  echo "$changes changes made"
fi
