#!/usr/bin/env bash
# Rootful Podman for pgha's compose backend on a fresh Debian 12 machine, and the local base
# image the generated Containerfile builds FROM when no image registry is reachable.
# Idempotent: every step checks first and does nothing when it is already done. Run as root.
#
#   scripts/container-engine.sh [VENV]     # VENV (default .venv) receives podman-compose
#
# Environment: PGHA_BASE_IMAGE (default localhost/pgha-base:bookworm).
set -euo pipefail

VENV=${1:-.venv}
BASE_IMAGE=${PGHA_BASE_IMAGE:-localhost/pgha-base:bookworm}
# Keep in step with pyproject's `containers` extra.
PODMAN_COMPOSE_SPEC=${PODMAN_COMPOSE_SPEC:-podman-compose==1.6.0}
CONF=/etc/containers/containers.conf
MARK="# written by pgha scripts/container-engine.sh"

say() { echo "container-engine: $*"; }

if [ "$(id -u)" -ne 0 ]; then
  echo "container-engine: must run as root (rootful Podman)" >&2
  exit 2
fi

# --- packages ----------------------------------------------------------------------------------
# runc, not crun: crun fails on this machine's hybrid cgroup layout. netavark + aardvark-dns give
# compose networks their DNS, so containers find each other (and HAProxy re-resolves) by name.
PACKAGES=(podman runc debootstrap netavark aardvark-dns catatonit iptables uidmap ca-certificates)
missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  say "installing ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}"
fi

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

# --- the local base image ----------------------------------------------------------------------
if podman image exists "$BASE_IMAGE"; then
  say "base image $BASE_IMAGE exists"
else
  # The Debian mirror apt already uses on this machine; read at run time, never written down.
  mirror=""
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
  rootfs=$(mktemp -d /var/tmp/pgha-rootfs.XXXXXX)
  trap 'rm -rf "$rootfs"' EXIT
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
  tar -C "$rootfs" -c . | podman import \
    --change 'CMD ["/bin/bash"]' --change 'ENV LANG=C.UTF-8' - "$BASE_IMAGE" >/dev/null
  say "base image $BASE_IMAGE built in $(( $(date +%s) - start )) s"
fi
say "ready: $(podman --version), runtime $(podman info --format '{{.Host.OCIRuntime.Name}}')"
