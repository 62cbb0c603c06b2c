#!/usr/bin/env bash
# Builds the registry-free server image: a static `blog` binary carrying the
# cap_net_bind_service file capability, passwd/group entries for 2200:2200
# and the sample site, tarred with xattrs into `docker import`. Idempotent:
# skips the import when the image already holds the same root file system.
set -euo pipefail

usage() { echo "usage: scripts/build-image.sh [--tag TAG]  (default tag: hopless/blog:latest; prints the tag)"; }
tag="hopless/blog:latest"
while [ $# -gt 0 ]; do
  case "$1" in
    --tag) tag="${2:?--tag needs a value}"; shift 2 ;;
    -h|--help) usage; exit 0 ;;
    *) usage >&2; exit 2 ;;
  esac
done

cd "$(dirname "$0")/.."
target_dir="${CARGO_TARGET_DIR:-$PWD/target}"
triple=x86_64-unknown-linux-gnu
out="$target_dir/hopless-image"
rootfs="$out/rootfs"
# Two builds at once (tests and the bench) take turns.
mkdir -p "$out"
exec 9>"$out/build.lock"
flock 9

# An explicit --target keeps build scripts and proc macros dynamic while the
# binary itself links glibc statically.
RUSTFLAGS='-C target-feature=+crt-static' \
  cargo build --release -p server --bin blog --target "$triple" >&2
binary="$target_dir/$triple/release/blog"
if ldd "$binary" 2>&1 | grep -q '=>'; then
  echo "error: $binary is dynamically linked; is the +crt-static flag overridden by RUSTFLAGS/config?" >&2
  exit 1
fi

# Lay the root file system out in a staging folder; the bare profile runs
# rootfs/usr/local/bin/blog, so rootfs/ is only replaced when it changed.
stage="$out/staging"
rm -rf "$stage"
install -d -m 0755 "$stage/usr/local/bin" "$stage/etc" "$stage/srv"
install -m 0755 "$binary" "$stage/usr/local/bin/blog"
# Debug line tables stay in target/; the image gets a stripped copy.
strip --strip-all "$stage/usr/local/bin/blog"
cp -r server/site "$stage/srv/site"
chmod -R u=rwX,go=rX "$stage/srv/site"
printf 'root:x:0:0:root:/:/sbin/nologin\nblog:x:2200:2200:hopless blog:/:/sbin/nologin\n' >"$stage/etc/passwd"
printf 'root:x:0:\nblog:x:2200:\n' >"$stage/etc/group"
setcap cap_net_bind_service=+ep "$stage/usr/local/bin/blog"

# A reproducible tar (sorted, fixed times and owners) so its hash says
# whether anything changed.
tarball="$out/rootfs.tar"
tar --create --file "$tarball" --directory "$stage" --sort=name --mtime=@0 \
  --owner=0 --group=0 --numeric-owner --xattrs --xattrs-include=security.capability \
  --pax-option=exthdr.name=%d/PaxHeaders/%f,delete=atime,delete=ctime .
digest="$(sha256sum "$tarball" | cut -d' ' -f1)"
if [ "$(cat "$out/rootfs.sha256" 2>/dev/null)" = "$digest" ] && [ -x "$rootfs/usr/local/bin/blog" ]; then
  rm -rf "$stage"
else
  rm -rf "$rootfs.old"
  [ ! -d "$rootfs" ] || mv "$rootfs" "$rootfs.old"
  mv "$stage" "$rootfs"
  rm -rf "$rootfs.old"
  echo "$digest" >"$out/rootfs.sha256"
fi

current="$(docker image inspect --format '{{index .Config.Labels "hopless.rootfs"}}' "$tag" 2>/dev/null || true)"
previous="$(docker image inspect --format '{{.Id}}' "$tag" 2>/dev/null || true)"
if [ "$current" = "$digest" ]; then
  echo "image $tag is up to date (rootfs sha256 $digest)" >&2
else
  # docker import (API 1.41) refuses STOPSIGNAL and HEALTHCHECK changes, so
  # the metadata goes on in a build FROM the imported layer: metadata-only
  # instructions never rewrite files, and the capability xattr stays.
  base="hopless/blog-rootfs:${digest:0:12}"
  docker import "$tarball" "$base" >/dev/null
  docker build --quiet --tag "$tag" - >/dev/null <<EOF
FROM $base
USER 2200:2200
ENV BLOG_SITE=/srv/site
EXPOSE 80/tcp 443/tcp
STOPSIGNAL SIGTERM
HEALTHCHECK --interval=5s --timeout=3s --retries=3 CMD ["/usr/local/bin/blog", "healthcheck"]
ENTRYPOINT ["/usr/local/bin/blog"]
LABEL hopless.rootfs=$digest
EOF
  docker rmi "$base" >/dev/null
  # The image this one replaces, unless a container still uses it.
  [ -z "$previous" ] || docker rmi "$previous" >/dev/null 2>&1 || true
  echo "built $tag (rootfs sha256 $digest, $(du -h "$tarball" | cut -f1) tar)" >&2
fi
echo "$tag"
