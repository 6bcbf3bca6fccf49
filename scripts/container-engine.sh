#!/usr/bin/env bash
# The container engines for pgha's compose backend on a fresh Debian 12 machine: rootful Podman
# (with podman-compose) and Docker (Debian's docker.io, its daemon started if nothing runs it,
# and docker-compose v1, the lab's command), and the local base image the generated
# Containerfile builds FROM when no image registry is reachable, in each engine.
# Idempotent: every step checks first and does nothing when it is already done. Run as root.
#
#   scripts/container-engine.sh [VENV] [ENGINE...]   # VENV (default .venv) receives podman-compose;
#                                                    # ENGINE: podman, docker (default: both)
#
# Environment: PGHA_BASE_IMAGE (default localhost/pgha-base:bookworm).
set -euo pipefail

VENV=${1:-.venv}
shift || true
ENGINES=("$@")
[ ${#ENGINES[@]} -gt 0 ] || ENGINES=(podman docker)
BASE_IMAGE=${PGHA_BASE_IMAGE:-localhost/pgha-base:bookworm}
# Keep in step with pyproject's `containers` extra.
PODMAN_COMPOSE_SPEC=${PODMAN_COMPOSE_SPEC:-podman-compose==1.6.0}
CONF=/etc/containers/containers.conf
MARK="# written by pgha scripts/container-engine.sh"
DOCKERD_LOG=/var/log/pgha-dockerd.log

say() { echo "container-engine: $*"; }
wanted() { local e; for e in "${ENGINES[@]}"; do [ "$e" = "$1" ] && return 0; done; return 1; }

if [ "$(id -u)" -ne 0 ]; then
  echo "container-engine: must run as root (rootful Podman, Docker's daemon)" >&2
  exit 2
fi
for e in "${ENGINES[@]}"; do
  case "$e" in podman|docker) ;; *) echo "container-engine: unknown engine '$e' (podman or docker)" >&2; exit 2 ;; esac
done

# install_packages [--no-install-recommends] PACKAGE...
install_packages() {
  local missing=() p opts=()
  if [ "${1:-}" = --no-install-recommends ]; then opts=("$1"); shift; fi
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  if [ ${#missing[@]} -gt 0 ]; then
    say "installing ${missing[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${opts[@]}" "${missing[@]}" >/dev/null
  fi
}

setup_podman() {
  # --- packages ----------------------------------------------------------------------------------
  # runc, not crun: crun fails on this machine's hybrid cgroup layout. netavark + aardvark-dns give
  # compose networks their DNS, so containers find each other (and HAProxy re-resolves) by name.
  install_packages podman runc netavark aardvark-dns catatonit iptables uidmap ca-certificates

  # --- containers.conf ---------------------------------------------------------------------------
  # Higher ulimits than these are refused here; cgroupfs because no systemd user session manages
  # the containers' cgroups.
  want=$(cat <<CONFEOF
$MARK
[containers]
default_ulimits = ["nofile=20000:20000", "nproc=32768:32768"]

[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"

[network]
# netavark + aardvark-dns (not CNI, whose plugins Debian does not install with podman).
network_backend = "netavark"
CONFEOF
  )
  if [ ! -e "$CONF" ] || head -1 "$CONF" | grep -qF "$MARK"; then
    if [ "$(cat "$CONF" 2>/dev/null)" != "$want" ]; then
      say "writing $CONF"
      mkdir -p "$(dirname "$CONF")"
      printf '%s\n' "$want" > "$CONF"
    fi
  else
    for setting in 'runtime = "runc"' 'cgroup_manager = "cgroupfs"' 'nofile=20000:20000'; do
      if ! grep -qF "$setting" "$CONF"; then
        echo "container-engine: $CONF exists and was not written by pgha; it needs: $setting" >&2
        exit 2
      fi
    done
  fi

  # --- podman-compose ----------------------------------------------------------------------------
  if [ ! -x "$VENV/bin/podman-compose" ]; then
    if [ ! -x "$VENV/bin/python" ]; then
      /usr/bin/python3 -m venv "$VENV"
    fi
    say "installing $PODMAN_COMPOSE_SPEC into $VENV"
    "$VENV/bin/python" -m pip install -q "$PODMAN_COMPOSE_SPEC"
  fi
}

# --- Docker --------------------------------------------------------------------------------------
# docker.io runs its daemon under systemd where there is one; on a machine without systemd (a CI
# container) pgha starts dockerd itself, in the background, logging to $DOCKERD_LOG. When dockerd
# turns IP forwarding on itself, it sets the iptables FORWARD policy to DROP: pgha's netns
# clusters never cross this namespace's FORWARD chain, and Podman's netavark accepts its own
# networks' traffic explicitly, so both keep working (docs/containers.md).
setup_docker() {
  # Without recommends: they would add AppArmor and needrestart, which a container host here has no use for.
  install_packages --no-install-recommends docker.io docker-compose iptables ca-certificates
  if ! docker info >/dev/null 2>&1; then
    if [ -d /run/systemd/system ]; then
      say "starting docker (systemctl)"
      systemctl start docker
    else
      say "starting dockerd (no systemd here; log: $DOCKERD_LOG)"
      setsid dockerd >>"$DOCKERD_LOG" 2>&1 </dev/null &
    fi
    for _ in $(seq 1 60); do docker info >/dev/null 2>&1 && break; sleep 1; done
    if ! docker info >/dev/null 2>&1; then
      echo "container-engine: dockerd did not answer in 60 s (see $DOCKERD_LOG)" >&2
      exit 2
    fi
  fi
}

# --- the local base image ----------------------------------------------------------------------
has_base() { "$1" image inspect "$BASE_IMAGE" >/dev/null 2>&1; }

# A minimal Debian bookworm, from the mirror apt already uses, as a tar file at $1.
debian_rootfs_tar() {
  local mirror="" f rootfs start
  # The Debian mirror apt already uses on this machine; read at run time, never written down.
  for f in /etc/apt/sources.list.d/*.sources; do
    [ -e "$f" ] || continue
    mirror=$(awk '
      /^URIs:/ { uris = $2 }
      /^Suites:/ { for (i = 2; i <= NF; i++) if ($i == "bookworm") ok = 1 }
      /^$/ { if (ok && uris != "") { print uris; exit } ok = 0; uris = "" }
      END { if (ok && uris != "") print uris }' "$f" | head -1)
    [ -n "$mirror" ] && break
  done
  if [ -z "$mirror" ] && [ -e /etc/apt/sources.list ]; then
    mirror=$(awk '$1 == "deb" && $3 == "bookworm" { print $2; exit }' /etc/apt/sources.list)
  fi
  if [ -z "$mirror" ]; then
    echo "container-engine: no Debian bookworm mirror found in the apt sources" >&2
    exit 2
  fi
  install_packages debootstrap
  rootfs="$WORK/rootfs"
  mkdir -p "$rootfs"
  say "debootstrap --variant=minbase bookworm (the mirror apt uses)"
  start=$(date +%s)
  debootstrap --variant=minbase --include=ca-certificates bookworm "$rootfs" "$mirror" >/dev/null
  # The host's extra CA certificates (e.g. a TLS-inspecting egress proxy), so that package
  # downloads inside builds trust what the host trusts; pip is told to use the system store.
  if compgen -G "/usr/local/share/ca-certificates/*.crt" >/dev/null; then
    cp /usr/local/share/ca-certificates/*.crt "$rootfs/usr/local/share/ca-certificates/"
    chroot "$rootfs" update-ca-certificates >/dev/null
  fi
  printf '[global]\ncert = /etc/ssl/certs/ca-certificates.crt\n' > "$rootfs/etc/pip.conf"
  chroot "$rootfs" apt-get clean
  rm -rf "$rootfs"/var/lib/apt/lists/*
  tar -C "$rootfs" -cf "$1" .
  say "debootstrap done in $(( $(date +%s) - start )) s"
}

# The base image into every engine that lacks it: copied from the other engine when that one has
# it (seconds), else imported from a fresh debootstrap (minutes, once).
ensure_base_image() {
  local engine other tarball
  for engine in "${ENGINES[@]}"; do
    if has_base "$engine"; then
      say "base image $BASE_IMAGE exists in $engine"
      continue
    fi
    other=""
    for e in podman docker; do
      [ "$e" != "$engine" ] && command -v "$e" >/dev/null && has_base "$e" && other=$e
    done
    if [ -n "$other" ]; then
      say "copying base image $BASE_IMAGE from $other to $engine"
      "$other" save "$BASE_IMAGE" | "$engine" load >/dev/null
    else
      tarball="$WORK/rootfs.tar"
      [ -e "$tarball" ] || debian_rootfs_tar "$tarball"
      "$engine" import --change 'CMD ["/bin/bash"]' --change 'ENV LANG=C.UTF-8' "$tarball" "$BASE_IMAGE" >/dev/null
      say "base image $BASE_IMAGE imported into $engine"
    fi
  done
}

WORK=$(mktemp -d /var/tmp/pgha-engine.XXXXXX)
trap 'rm -rf "$WORK"' EXIT
if wanted podman; then setup_podman; fi
if wanted docker; then setup_docker; fi
ensure_base_image
if wanted podman; then
  say "ready: $(podman --version), runtime $(podman info --format '{{.Host.OCIRuntime.Name}}')"
fi
if wanted docker; then
  say "ready: docker $(docker version --format '{{.Server.Version}}') (storage $(docker info --format '{{.Driver}}'), cgroup driver $(docker info --format '{{.CgroupDriver}}')), $(docker-compose version --short 2>/dev/null | sed 's/^/docker-compose /')"
fi
