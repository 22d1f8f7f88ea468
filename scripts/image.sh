#!/usr/bin/env bash
# Build container/ into an OCI image and run it as SageMaker does, with no Docker daemon (rootful podman).
#
#   scripts/image.sh check              exit 0 if images can be built here (installs the tools when root), else 3
#   scripts/image.sh build              build container/ -> $IMAGE (base layer cached under $OCI_WORK)
#   scripts/image.sh run DIR PORT NAME [ENV=VALUE ...]
#                                       start $IMAGE as SageMaker would: DIR mounted read-only at /opt/ml/model,
#                                       `serve` as the command, port 8080 (or $CONTAINER_PORT) published on
#                                       127.0.0.1:PORT only
#   scripts/image.sh podman ARGS...     podman with this project's storage and settings
#
# The base image is made locally (Debian bookworm's python3.11 via mmdebstrap), because no registry is reachable
# from these machines; it is tagged as the Dockerfile's default BASE so the Dockerfile itself stays unchanged.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
OCI_WORK=${OCI_WORK:-/var/tmp/textexplain-oci}
IMAGE=${IMAGE:-localhost/textexplain-serve:dev}
BASE_TAG=localhost/textexplain-base:bookworm
DEFAULT_BASE=docker.io/library/python:3.11-slim
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
  # This machine: runc (crun refuses the cgroup layout), cgroupfs, and ulimits no higher than the hard limits.
  local nofile nproc
  nofile=$(ulimit -Hn)
  nproc=$(ulimit -Hu)
  if [ "$nproc" = unlimited ] || [ "$nproc" -gt 32768 ]; then nproc=32768; fi
  printf '[containers]\ndefault_ulimits = ["nofile=%s:%s", "nproc=%s:%s"]\n[engine]\nruntime = "runc"\ncgroup_manager = "cgroupfs"\nevents_logger = "file"\n' \
    "$nofile" "$nofile" "$nproc" "$nproc" >"$OCI_WORK/containers.conf"
  export CONTAINERS_STORAGE_CONF="$OCI_WORK/storage.conf" CONTAINERS_CONF="$OCI_WORK/containers.conf"
}

base_image() {
  podman image exists "$BASE_TAG" && podman image exists "$DEFAULT_BASE" && return 0
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
    "$OCI_WORK/base.tar" "$BASE_TAG" >/dev/null
  # This network re-signs TLS with its own CA: trust it in the local base layer only, never in container/.
  if ls /usr/local/share/ca-certificates/*.crt >/dev/null 2>&1; then
    local ctx="$OCI_WORK/ca-context"
    rm -rf "$ctx" && mkdir -p "$ctx"
    cp /usr/local/share/ca-certificates/*.crt "$ctx/"
    printf '%s\n' "FROM $BASE_TAG" 'COPY *.crt /usr/local/share/ca-certificates/' 'RUN update-ca-certificates >/dev/null' \
      'ENV SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt PIP_CERT=/etc/ssl/certs/ca-certificates.crt' \
      >"$ctx/Containerfile"
    podman build --quiet --pull=never -t "$BASE_TAG" "$ctx" >/dev/null
  fi
  podman tag "$BASE_TAG" "$DEFAULT_BASE"
}

cmd=${1:-}
shift || true
case "$cmd" in
  check)
    install_tools || exit 3
    configure
    podman info >/dev/null 2>&1 || { echo "image: podman cannot run here" >&2; exit 3; }
    ;;
  build)
    install_tools || exit 3
    configure
    base_image
    podman build --quiet --pull=never --network=host -t "$IMAGE" "$ROOT/container" >/dev/null
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
    sed -n '2,12p' "$0" >&2
    exit 2
    ;;
esac
