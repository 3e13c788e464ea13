#!/usr/bin/env bash
# Build the local Docker image the Graflow tests run tasks in.
#
# Nothing can be pulled from Docker Hub here, so the image is made from scratch:
# a Debian minbase rootfs (debootstrap) + python3 + exactly the host's cloudpickle
# version (pickled task code must unpickle with the same cloudpickle/Python).
#
# Output: progress goes to stderr; stdout gets only the image name, e.g.
#   graflow-test-python:py3.11-cp2.1.0
# so callers can do IMAGE=$(scripts/build-test-image.sh).
#
# Env vars (all optional):
#   GRAFLOW_PYTHON         python whose cloudpickle version is mirrored (default: python3)
#   GRAFLOW_CACHE_DIR      cache for the base rootfs tarball (default: /var/cache/graflow)
#   GRAFLOW_DEBIAN_SUITE   Debian suite to bootstrap (default: bookworm)
#   GRAFLOW_DEBIAN_MIRROR  Debian mirror (default: the one apt on this host uses)
#   GRAFLOW_IMAGE_REPO     image repository name (default: graflow-test-python)
#   GRAFLOW_REBUILD=1      ignore the existing image and the base rootfs cache
set -euo pipefail

PY="${GRAFLOW_PYTHON:-python3}"
CACHE_DIR="${GRAFLOW_CACHE_DIR:-/var/cache/graflow}"
SUITE="${GRAFLOW_DEBIAN_SUITE:-bookworm}"
REPO="${GRAFLOW_IMAGE_REPO:-graflow-test-python}"
REBUILD="${GRAFLOW_REBUILD:-0}"

log() { echo "[build-test-image] $*" >&2; }
die() { echo "[build-test-image] ERROR: $*" >&2; exit 1; }

# --- What to build: versions come from the host python -----------------------
command -v "$PY" >/dev/null 2>&1 || die "python '$PY' not found (set GRAFLOW_PYTHON)"
HOST_PYVER=$("$PY" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
CP_VERSION=$("$PY" -c 'import cloudpickle; print(cloudpickle.__version__)' 2>/dev/null) ||
    die "cloudpickle is not importable by '$PY' (install it there, or set GRAFLOW_PYTHON)"

# The tag is derived from the host interpreter so tests can compute it themselves.
IMAGE="$REPO:py${HOST_PYVER}-cp${CP_VERSION}"

docker info >/dev/null 2>&1 || die "docker daemon not reachable; run scripts/services.sh first"

mkdir -p "$CACHE_DIR"
# Serialize concurrent builds (e.g. parallel test workers calling this script).
exec 9>"$CACHE_DIR/build.lock"
flock 9

# --- Cache hit: the image already exists --------------------------------------
if [[ "$REBUILD" != 1 ]] && docker image inspect "$IMAGE" >/dev/null 2>&1; then
    docker tag "$IMAGE" "$REPO:latest"   # keep :latest pointing at what we return
    log "image $IMAGE already exists (cached)"
    echo "$IMAGE"
    exit 0
fi

START=$SECONDS
ARCH=$(dpkg --print-architecture)
# Bump BASE_REV when the debootstrap step below changes, to invalidate the cache.
BASE_REV=1
BASE_TAR="$CACHE_DIR/rootfs-$SUITE-$ARCH-minbase-python3-v$BASE_REV.tar.gz"

WORK=$(mktemp -d "$CACHE_DIR/build.XXXXXX")   # out of the repo, same fs as the cache
ROOTFS="$WORK/rootfs"
cleanup() {
    # A failed debootstrap can leave proc/sys mounted inside the rootfs: unmount
    # before deleting so rm never walks into the host's /proc or /sys.
    awk -v r="$ROOTFS/" 'index($2, r) == 1 { print $2 }' /proc/mounts | sort -r |
        while read -r m; do umount -l "$m" || true; done
    rm -rf "$WORK"
}
trap cleanup EXIT
mkdir "$ROOTFS"

# Mirror apt already uses (whatever proxy/mirror this machine is set up with).
debian_mirror() {
    if [[ -n "${GRAFLOW_DEBIAN_MIRROR:-}" ]]; then echo "$GRAFLOW_DEBIAN_MIRROR"; return; fi
    # apt parses sources.list, sources.list.d/*.list and *.sources (deb822) for us.
    local uri
    # shellcheck disable=SC2016  # $(...) here is apt's format syntax, not shell
    uri=$(apt-get indextargets --no-release-info --format '$(REPO_URI) $(RELEASE) $(TARGET_OF)' 2>/dev/null |
        awk -v s="$SUITE" '$2 == s && $3 == "deb" { print $1; exit }')
    echo "${uri:-http://deb.debian.org/debian}"
}

# --- Base rootfs: debootstrap once, then reuse the cached tarball -------------
if [[ "$REBUILD" != 1 && -s "$BASE_TAR" ]]; then
    log "unpacking cached base rootfs $BASE_TAR"
    tar -C "$ROOTFS" --numeric-owner -xpzf "$BASE_TAR"
else
    command -v debootstrap >/dev/null 2>&1 || die "debootstrap missing (apt-get install debootstrap)"
    MIRROR=$(debian_mirror)
    log "debootstrap $SUITE ($ARCH, minbase + python3, python3-pip) from $MIRROR; takes a few minutes"
    if ! debootstrap --variant=minbase --include=python3,python3-pip \
        "$SUITE" "$ROOTFS" "$MIRROR" >"$WORK/debootstrap.log" 2>&1; then
        tail -n 30 "$WORK/debootstrap.log" >&2
        die "debootstrap failed (log above)"
    fi
    log "debootstrap done after $((SECONDS - START))s; trimming docs/caches"
    # Not needed to run Python; keeps the image small.
    rm -rf "$ROOTFS"/var/cache/apt/archives/*.deb "$ROOTFS"/var/cache/apt/*.bin \
        "$ROOTFS"/var/lib/apt/lists/* "$ROOTFS"/usr/share/doc/* "$ROOTFS"/usr/share/man/* \
        "$ROOTFS"/usr/share/info/* "$ROOTFS"/usr/share/locale/* "$ROOTFS"/var/log/*.log
    log "caching base rootfs as $BASE_TAR"
    # Device nodes / proc / sys are provided by Docker at run time.
    tar -C "$ROOTFS" --numeric-owner --exclude='./dev/*' --exclude='./proc/*' --exclude='./sys/*' \
        -czf "$BASE_TAR.tmp" .
    mv "$BASE_TAR.tmp" "$BASE_TAR"   # atomic: an interrupted build leaves no half cache
fi

IMAGE_PYVER=$(chroot "$ROOTFS" python3 -c 'import sys; print("%d.%d" % sys.version_info[:2])')
if [[ "$IMAGE_PYVER" != "$HOST_PYVER" ]]; then
    log "WARNING: image python is $IMAGE_PYVER but host python ($PY) is $HOST_PYVER;" \
        "cloudpickle payloads may not load across versions (tag still says py$HOST_PYVER)"
fi

# --- cloudpickle: the host's exact version, from PyPI, inside the chroot ------
# Host CA bundle, so pip's TLS to PyPI works whatever the host trusts (proxy CAs).
install -D -m 0644 /etc/ssl/certs/ca-certificates.crt "$ROOTFS/etc/ssl/certs/ca-certificates.crt"
# DNS for pip inside the chroot; Docker supplies its own resolv.conf at run time.
cp -L /etc/resolv.conf "$ROOTFS/etc/resolv.conf"

# The host's pip config may add local file:// indexes (useless in the chroot);
# only an http(s) index-url is carried over. Unset => pip's default, PyPI.
INDEX_URL="${PIP_INDEX_URL:-$("$PY" -m pip config get global.index-url 2>/dev/null || true)}"
PIP_ENV=(PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME=/root
    PIP_CERT=/etc/ssl/certs/ca-certificates.crt PIP_DISABLE_PIP_VERSION_CHECK=1)
if [[ "$INDEX_URL" == http* ]]; then PIP_ENV+=("PIP_INDEX_URL=$INDEX_URL"); fi
for v in http_proxy https_proxy no_proxy HTTP_PROXY HTTPS_PROXY NO_PROXY; do
    if [[ -n "${!v:-}" ]]; then PIP_ENV+=("$v=${!v}"); fi
done

log "pip install cloudpickle==$CP_VERSION into the rootfs (index: ${INDEX_URL:-PyPI default})"
# env -i: keep the host's PIP_* settings (find-links, constraints) out of the chroot.
# --break-system-packages: bookworm's pip refuses system installs otherwise (PEP 668).
if ! chroot "$ROOTFS" env -i "${PIP_ENV[@]}" python3 -m pip install --quiet --no-cache-dir \
    --break-system-packages --root-user-action=ignore "cloudpickle==$CP_VERSION" >&2; then
    die "pip install cloudpickle==$CP_VERSION failed inside the rootfs"
fi
chroot "$ROOTFS" python3 -c "import cloudpickle; assert cloudpickle.__version__ == '$CP_VERSION'"
rm -f "$ROOTFS/etc/resolv.conf"

# --- Import into Docker -------------------------------------------------------
log "docker import -> $IMAGE"
tar -C "$ROOTFS" --numeric-owner --exclude='./dev/*' --exclude='./proc/*' --exclude='./sys/*' -c . |
    docker import \
        --change 'WORKDIR /' \
        --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
        --change 'ENV LANG=C.UTF-8' \
        --change 'CMD ["python3"]' \
        --message "graflow test image: Debian $SUITE python$IMAGE_PYVER cloudpickle==$CP_VERSION" \
        - "$IMAGE" >/dev/null
docker tag "$IMAGE" "$REPO:latest"

# Smoke test; drop the image if it is broken so the next run rebuilds it.
if ! docker run --rm "$IMAGE" python3 -c 'import cloudpickle' >&2; then
    docker rmi -f "$IMAGE" "$REPO:latest" >/dev/null 2>&1 || true
    die "built image $IMAGE cannot import cloudpickle"
fi

SIZE=$(docker image inspect --format '{{.Size}}' "$IMAGE")
log "built $IMAGE ($((SIZE / 1024 / 1024)) MB) in $((SECONDS - START))s"
echo "$IMAGE"
