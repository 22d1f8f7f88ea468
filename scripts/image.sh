#!/usr/bin/env bash
# Build container/ into an OCI image and run it as SageMaker does, with no Docker daemon (rootful podman).
#
#   scripts/image.sh check              exit 0 if images can be built here (installs the tools when root), else 3
#   scripts/image.sh build              build container/Dockerfile (context: the checkout, as /.dockerignore admits)
#                                       -> $IMAGE (on $BASE, see below; layers cached under $OCI_WORK)
#   scripts/image.sh run DIR PORT NAME [ENV=VALUE ...]
#                                       start $IMAGE as SageMaker would: DIR mounted read-only at /opt/ml/model,
#                                       `serve` as the command, port 8080 (or $CONTAINER_PORT) published on
#                                       127.0.0.1:PORT only
#   scripts/image.sh podman ARGS...     podman with this project's storage and settings
#
# The base is always passed to the Dockerfile as the build argument BASE. With BASE set, that image is used
# (pulled if missing, e.g. BASE=docker.io/library/python:3.11-slim); without it, a base is made here from Debian
# bookworm's python3.11 (mmdebstrap) under its own local name, for machines that reach no image registry. When the
# caller's pip has a certificate bundle (PIP_CERT), that base gets a layer with it, under a name of its own.
set -euo pipefail

ROOT=$(cd "$(dirname "$(readlink -f "$0")")/.." && pwd)  # the checkout, wherever the script is called from
OCI_WORK=${OCI_WORK:-/var/tmp/textexplain-oci}
IMAGE=${IMAGE:-localhost/textexplain-serve:dev}
LOCAL_BASE=localhost/textexplain-base:bookworm
TOOLS=(podman runc containernetworking-plugins iptables mmdebstrap)

have_tools() { command -v podman >/dev/null && command -v mmdebstrap >/dev/null && command -v runc >/dev/null; }

install_tools() {
  have_tools && return 0
  if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then
    echo "image: podman/mmdebstrap/runc are missing and cannot be installed here (needs root and apt)" >&2
    return 3
  fi
  echo "image: installing ${TOOLS[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null 2>&1 || true
  apt-get install -y -qq --no-install-recommends "${TOOLS[@]}" >/dev/null 2>&1 || {
    echo "image: could not install ${TOOLS[*]}" >&2
    return 3
  }
}

configure() {
  mkdir -p "$OCI_WORK"/{storage,runroot}
  printf '[storage]\ndriver = "overlay"\ngraphroot = "%s/storage"\nrunroot = "%s/runroot"\n' \
    "$OCI_WORK" "$OCI_WORK" >"$OCI_WORK/storage.conf"
  # runc and cgroupfs (crun refuses some cgroup layouts, e.g. inside another container without systemd), and
  # ulimits no higher than the caller's hard limits (podman's defaults may exceed them).
  local nofile nproc
  nofile=$(ulimit -Hn)
  nproc=$(ulimit -Hu)
  if [ "$nproc" = unlimited ] || [ "$nproc" -gt 32768 ]; then nproc=32768; fi
  printf '[containers]\ndefault_ulimits = ["nofile=%s:%s", "nproc=%s:%s"]\n[engine]\nruntime = "runc"\ncgroup_manager = "cgroupfs"\nevents_logger = "file"\n' \
    "$nofile" "$nofile" "$nproc" "$nproc" >"$OCI_WORK/containers.conf"
  export CONTAINERS_STORAGE_CONF="$OCI_WORK/storage.conf" CONTAINERS_CONF="$OCI_WORK/containers.conf"
}

local_base() {
  podman image exists "$LOCAL_BASE" && return 0
  if [ ! -s "$OCI_WORK/base.tar" ]; then
    mmdebstrap --quiet --variant=apt --include=python3,python3-venv,python3-pip,python-is-python3,ca-certificates \
      --dpkgopt='path-exclude=/usr/share/doc/*' --dpkgopt='path-exclude=/usr/share/man/*' \
      --dpkgopt='path-exclude=/usr/share/locale/*' \
      --customize-hook='rm -f "$1"/usr/lib/python3*/EXTERNALLY-MANAGED' \
      bookworm "$OCI_WORK/base.partial.tar" http://deb.debian.org/debian
    mv "$OCI_WORK/base.partial.tar" "$OCI_WORK/base.tar"
  fi
  podman import --quiet --change 'CMD ["/bin/bash"]' \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    "$OCI_WORK/base.tar" "$LOCAL_BASE" >/dev/null
}

# Prints the base to build on when BASE is not set: the locally made one, or, when the caller's pip names a
# certificate bundle (PIP_CERT), that base plus a layer where pip uses the same bundle (named by the bundle's hash),
# so pip in the build reaches the package index as the caller's pip does. container/ never carries a certificate.
local_base_for_pip() {
  local_base >&2
  if [ -z "${PIP_CERT:-}" ] || [ ! -f "$PIP_CERT" ]; then
    echo "$LOCAL_BASE"
    return
  fi
  local name ctx
  name="$LOCAL_BASE-pip-cert-$(sha256sum "$PIP_CERT" | cut -c1-12)"
  if ! podman image exists "$name"; then
    ctx="$OCI_WORK/pip-cert-context"
    rm -rf "$ctx" && mkdir -p "$ctx"
    cp "$PIP_CERT" "$ctx/pip-cert.pem"
    printf '%s\n' "FROM $LOCAL_BASE" 'COPY pip-cert.pem /etc/ssl/certs/pip-cert.pem' \
      'ENV PIP_CERT=/etc/ssl/certs/pip-cert.pem' >"$ctx/Containerfile"
    podman build --quiet --pull=never -t "$name" "$ctx" >/dev/null
  fi
  echo "$name"
}

# One install or build at a time on this machine (two test workers may ask at once): apt and a build of the same
# tag do not share well; whoever waits finds the tools installed and the layers cached.
serialize() {
  mkdir -p "$OCI_WORK"
  exec 9>"$OCI_WORK/build.lock"
  flock 9
}

cmd=${1:-}
shift || true
case "$cmd" in
  check)
    serialize
    install_tools || exit 3
    configure
    podman info >/dev/null 2>&1 || { echo "image: podman cannot run here" >&2; exit 3; }
    ;;
  build)
    serialize
    install_tools || exit 3
    configure
    if [ -n "${BASE:-}" ]; then
      base=$BASE pull=missing
    else
      base=$(local_base_for_pip) pull=never
    fi
    podman build --quiet --pull="$pull" --network=host --build-arg BASE="$base" -t "$IMAGE" \
      -f "$ROOT/container/Dockerfile" "$ROOT" >/dev/null
    echo "$IMAGE"
    ;;
  run)
    dir=${1:?model directory}; port=${2:?host port}; name=${3:?container name}; shift 3
    configure
    envs=()
    for kv in "$@"; do envs+=(--env "$kv"); done
    podman run -d --name "$name" -p "127.0.0.1:$port:${CONTAINER_PORT:-8080}" -v "$dir:/opt/ml/model:ro" \
      "${envs[@]}" "$IMAGE" serve
    ;;
  podman)
    configure
    exec podman "$@"
    ;;
  *)
    sed -n '2,16p' "$0" >&2
    exit 2
    ;;
esac
