#!/usr/bin/env bash
# certbot deploy hook, installed by scripts/setup-host.sh as
# <letsencrypt>/renewal-hooks/deploy/hopless-blog: after a renewal it keeps
# the group grant on the new private key and makes every running blog
# container (label hopless.reload=sighup) reload its certificate with
# SIGHUP, without a restart.
set -euo pipefail

usage() { echo "usage: RENEWED_LINEAGE=<letsencrypt>/live/NAME certbot-deploy-hook.sh  (certbot sets RENEWED_LINEAGE)"; }
case "${1:-}" in -h|--help) usage; exit 0 ;; "") ;; *) usage >&2; exit 2 ;; esac
lineage="${RENEWED_LINEAGE:-}"
if [ -z "$lineage" ] || ! [ -e "$lineage/privkey.pem" ]; then
  echo "hopless-blog hook: RENEWED_LINEAGE='$lineage' has no privkey.pem" >&2
  usage >&2
  exit 2
fi

# certbot copies group and mode from the previous key; re-apply them in
# case this lineage was new, taking the group setup-host.sh put on archive/.
archive="$(dirname "$(readlink -f "$lineage/privkey.pem")")"
gid="$(stat -c %g "$archive")"
if [ "$gid" != 0 ]; then
  for key in "$archive"/privkey*.pem; do
    if [ "$(stat -c %g:%a "$key")" != "$gid:640" ]; then
      chgrp "$gid" "$key"
      chmod 0640 "$key"
      echo "hopless-blog hook: granted gid $gid read on $key"
    fi
  done
fi

containers="$(docker ps --quiet --filter label=hopless.reload=sighup)"
if [ -z "$containers" ]; then
  echo "hopless-blog hook: no running blog container to reload"
  exit 0
fi
for c in $containers; do
  docker kill --signal HUP "$c" >/dev/null
  echo "hopless-blog hook: sent SIGHUP to container $c for $lineage"
done
