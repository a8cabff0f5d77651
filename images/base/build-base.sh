#!/bin/sh
# Build the Debian bookworm base image `bottle-base:bookworm` without pulling anything:
# debootstrap from the Debian mirror into a temp dir, then `docker import`.
# Used by git-gate (needs a git binary) and by the e2e test agent (sh, curl, git).
# Skips when the image already exists (pass --force to rebuild).
set -eu
TAG="${BOTTLE_BASE_TAG:-bottle-base:bookworm}"
MIRROR="${BOTTLE_DEBIAN_MIRROR:-http://deb.debian.org/debian}"
PACKAGES="ca-certificates,curl,git,netcat-openbsd,bind9-dnsutils"
if [ "${1:-}" != "--force" ] && docker image inspect "$TAG" >/dev/null 2>&1; then
    echo "base image $TAG exists; skipping (use --force to rebuild)"
    exit 0
fi
if ! command -v debootstrap >/dev/null 2>&1; then
    echo "error: debootstrap not found; install it with: apt-get install -y debootstrap" >&2
    exit 1
fi
DIR="$(mktemp -d /tmp/bottle-base.XXXXXX)"
trap 'rm -rf "$DIR"' EXIT
echo "debootstrap bookworm ($PACKAGES) into $DIR ..."
debootstrap --variant=minbase --include="$PACKAGES" bookworm "$DIR" "$MIRROR"
# Trim what a container never needs.
rm -rf "$DIR/var/cache/apt/archives/"*.deb "$DIR/var/lib/apt/lists/"* \
       "$DIR/usr/share/doc" "$DIR/usr/share/man" "$DIR/usr/share/info" "$DIR/usr/share/locale"
tar -C "$DIR" -c . | docker import \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'LABEL org.opencontainers.image.title=bottle-base org.opencontainers.image.description="Debian bookworm minbase with ca-certificates, curl, git (debootstrap, no pull)"' \
    --change 'CMD ["/bin/sh"]' \
    - "$TAG"
echo "built $TAG"
