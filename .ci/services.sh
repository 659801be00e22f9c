#!/usr/bin/env bash
# Install the Debian packages behind the real-server test fixtures of tests/cloud/services.py:
#   Ceph RGW (S3):     ceph-mon ceph-osd radosgw   (one-node memstore cluster + radosgw)
#   Docker:            docker.io                   (dockerd, containerd, runc, docker CLI)
#   Docker registry:   docker-registry             (Distribution 2.8)
#   Test images:       busybox-static              (a shell for images built FROM scratch:
#                                                   no image can be pulled in the tests)
#   A real terminal:   tmux                        (`runctl top` under a terminal, capture-pane)
# Idempotent: when everything is installed it only checks (well under a second). Nothing is
# started here and no system service is enabled: the pytest fixtures start their own
# daemons on 127.0.0.1 under pytest's temporary directory and stop them afterwards.
# Usage: bash .ci/services.sh   (as root, or with sudo available)
set -euo pipefail

packages=(ceph-mon ceph-osd radosgw docker.io docker-registry busybox-static tmux)
binaries=(ceph-mon ceph-osd radosgw radosgw-admin ceph monmaptool ceph-authtool
          dockerd containerd runc docker docker-init docker-registry busybox tmux)

missing=()
for pkg in "${packages[@]}"; do
    status=$(dpkg-query -W -f='${db:Status-Status}' "$pkg" 2>/dev/null || true)
    [[ "$status" == "installed" ]] || missing+=("$pkg")
done

if ((${#missing[@]})); then
    sudo=""
    if [[ $(id -u) -ne 0 ]]; then sudo="sudo"; fi
    echo "services.sh: installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    # No init system runs services here; keep maintainer scripts from trying.
    policy=/usr/sbin/policy-rc.d
    created_policy=0
    if [[ ! -e $policy ]]; then
        printf '#!/bin/sh\nexit 101\n' | $sudo tee $policy >/dev/null
        $sudo chmod +x $policy
        created_policy=1
    fi
    trap '[[ $created_policy == 1 ]] && $sudo rm -f $policy' EXIT
    for attempt in 1 2 3; do
        if $sudo apt-get update -qq && $sudo apt-get install -y -qq --no-install-recommends \
            "${missing[@]}" >/dev/null; then
            break
        fi
        if ((attempt == 3)); then
            echo "services.sh: apt-get failed" >&2
            exit 1
        fi
        sleep $((attempt * 5))
    done
fi

for binary in "${binaries[@]}"; do
    if ! command -v "$binary" >/dev/null 2>&1; then
        echo "services.sh: $binary is still missing after installing ${packages[*]}" >&2
        exit 1
    fi
done
echo "services.sh: ceph rgw, dockerd, docker-registry, busybox and tmux are available"
