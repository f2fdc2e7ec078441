#!/usr/bin/env bash
# Prepares this machine for simfarm's VM tier (`simfarm vm -- COMMAND`):
# QEMU, the distribution's stock kernel with headers, a v4l2loopback >= 0.13
# DKMS module built for THAT kernel (not the running one, which may be a
# custom kernel without module support), udev and busybox for the guest, and
# virtme-ng. Run as root on Debian bookworm (or newer) or Ubuntu.
# The v4l2loopback source gets simfarm's poll fix before it is built
# (scripts/patches/, docs/v4l2loopback-poll.md).
# Idempotent: a second run only checks, and says so.
set -euo pipefail

MIN_LOOPBACK=0.13
PINS=/etc/apt/preferences.d/simfarm-v4l2loopback
SOURCES=/etc/apt/sources.list.d/simfarm-v4l2loopback.sources
VNG_VENV=/opt/simfarm/virtme-ng
POLL_PATCH=$(dirname "$(readlink -f "$0")")/patches/v4l2loopback-poll-rdnorm.patch
# One file per kernel: the srcversion of the module built there from the patched source
# (simfarm doctor reads it; simfarm/devices/loopback/poll_fix.py).
POLL_MARKERS=/opt/simfarm/v4l2loopback-poll-fix

say() { echo "setup-vm: $*"; }
die() { echo "setup-vm: ERROR: $*" >&2; exit 1; }

[[ $(id -u) == 0 ]] || die "run as root: sudo $0"
[[ $(uname -m) == x86_64 ]] || die "only x86_64 is supported (found $(uname -m))"
. /etc/os-release
export DEBIAN_FRONTEND=noninteractive

case "$ID" in
    debian) flavour=amd64 ;;
    ubuntu) flavour=generic ;;
    *) die "unsupported distribution '$ID' (Debian or Ubuntu needed)" ;;
esac
packages=(qemu-system-x86 "linux-image-$flavour" "linux-headers-$flavour" dkms udev
          v4l-utils ffmpeg kmod busybox-static python3-venv e2fsprogs python3 usbip patch
          # Camera programs the kernel tier runs on farm cameras (tests/vm/test_camera_programs.py,
          # docs/camera-programs.md): the guest sees this machine's root, so they live here.
          ustreamer pipewire pipewire-bin wireplumber dbus libcamera-tools
          gstreamer1.0-tools gstreamer1.0-pipewire gstreamer1.0-plugins-base)

installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "ok installed"; }
candidate() { apt-cache policy "$1" | awk '/Candidate:/ {print $2}'; }
# True when Debian version $1 is at least $2 (epochs and revisions handled by dpkg).
at_least() { [[ -n "$1" && "$1" != "(none)" ]] && dpkg --compare-versions "$1" ge "$2"; }

apt_updated=0
apt_update() {
    ((apt_updated)) && return 0
    say "apt-get update"
    apt-get update -qq
    apt_updated=1
}

missing=()
for pkg in "${packages[@]}"; do installed "$pkg" || missing+=("$pkg"); done
if ((${#missing[@]})); then
    apt_update
    say "installing ${missing[*]}"
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
else
    say "packages already installed: ${packages[*]}"
fi

# The kernel the VM boots: the one the metapackage currently points at.
kver=$(dpkg-query -W -f='${Depends}' "linux-image-$flavour" | tr ',|' '\n\n' \
       | sed -n 's/^ *linux-image-\([^ ]*\).*/\1/p' | head -n1)
[[ -n "$kver" && -f "/boot/vmlinuz-$kver" ]] || die "cannot find the kernel image of linux-image-$flavour"
[[ -d "/lib/modules/$kver/build" ]] || die "headers for $kver are missing: apt-get install linux-headers-$kver"
say "VM kernel: $kver (/boot/vmlinuz-$kver)"

# Adds suite $2 of archive $1 (component $3, keyring $4) with pins that let
# only v4l2loopback-dkms come from it; keeps it if that gives >= MIN_LOOPBACK.
try_suite() {
    local uri=$1 suite=$2 component=$3 keyring=$4
    printf 'Types: deb\nURIs: %s\nSuites: %s\nComponents: %s\nSigned-By: %s\n' \
        "$uri" "$suite" "$component" "$keyring" >"$SOURCES"
    # The specific pin comes first: apt uses the first record matching a package.
    printf 'Package: v4l2loopback-dkms\nPin: release n=%s\nPin-Priority: 990\n\nPackage: *\nPin: release n=%s\nPin-Priority: -1\n' \
        "$suite" "$suite" >"$PINS"
    say "trying v4l2loopback-dkms from $suite"
    apt_updated=0
    if apt_update && at_least "$(candidate v4l2loopback-dkms)" "$MIN_LOOPBACK"; then
        return 0
    fi
    rm -f "$SOURCES" "$PINS"
    return 1
}

# Newer suites build their DKMS packages with a dh_dkms that adds a versioned
# dkms dependency (trixie: dkms >= 3.0.11) the module source does not need;
# the common.postinst it calls exists in older dkms too. So when only that
# dependency blocks, install the same package with the dependency relaxed.
install_relaxed() {
    local dir
    dir=$(mktemp -d)
    chown _apt "$dir" 2>/dev/null || true
    (cd "$dir" && apt-get download -qq v4l2loopback-dkms)
    dpkg-deb -R "$dir"/v4l2loopback-dkms_*.deb "$dir/pkg"
    sed -i -E 's/^Depends: dkms \([^)]*\)/Depends: dkms/; s/^Version: .*/&+simfarm1/' "$dir/pkg/DEBIAN/control"
    dpkg-deb -b "$dir/pkg" "$dir/relaxed.deb" >/dev/null
    say "installing $(dpkg-deb -f "$dir/relaxed.deb" Version) (dkms dependency relaxed to the installed $(dpkg-query -W -f='${Version}' dkms))"
    apt-get install -y -qq --no-install-recommends "$dir/relaxed.deb" >/dev/null
    rm -rf "$dir"
}

loopback_pkg_version() { dpkg-query -W -f='${Version}' v4l2loopback-dkms 2>/dev/null || true; }

if at_least "$(loopback_pkg_version)" "$MIN_LOOPBACK"; then
    say "v4l2loopback-dkms $(loopback_pkg_version) already installed"
else
    apt_update
    if ! at_least "$(candidate v4l2loopback-dkms)" "$MIN_LOOPBACK"; then
        case "$ID" in
            debian)
                try_suite http://deb.debian.org/debian trixie main /usr/share/keyrings/debian-archive-keyring.gpg \
                || try_suite http://deb.debian.org/debian "$VERSION_CODENAME-backports" main /usr/share/keyrings/debian-archive-keyring.gpg \
                || die "no v4l2loopback-dkms >= $MIN_LOOPBACK found in trixie or $VERSION_CODENAME-backports"
                ;;
            ubuntu)
                mirror=$(apt-get indextargets --format '$(REPO_URI)' 2>/dev/null | grep -m1 '/ubuntu/\?$' || true)
                try_suite "${mirror:-http://archive.ubuntu.com/ubuntu}" questing universe /usr/share/keyrings/ubuntu-archive-keyring.gpg \
                || try_suite "${mirror:-http://archive.ubuntu.com/ubuntu}" plucky universe /usr/share/keyrings/ubuntu-archive-keyring.gpg \
                || die "no v4l2loopback-dkms >= $MIN_LOOPBACK found in a newer Ubuntu release"
                ;;
        esac
    fi
    if apt-get install -s -qq --no-install-recommends v4l2loopback-dkms >/dev/null 2>&1; then
        say "installing v4l2loopback-dkms $(candidate v4l2loopback-dkms)"
        apt-get install -y -qq --no-install-recommends v4l2loopback-dkms >/dev/null
    else
        install_relaxed
    fi
fi

# Applies the poll fix to v4l2loopback source directory $1 unless it is there already.
# The bug is the reader's `POLLIN | POLLWRNORM` (0.14.0 to at least 0.15.4); 0.13 and
# older answer POLLIN | POLLRDNORM and need nothing.
patch_poll() {
    local src=$1
    if ! grep -q 'POLLIN | POLLWRNORM' "$src/v4l2loopback.c"; then
        say "$src: poll already answers readers with POLLIN | POLLRDNORM"
        return 0
    fi
    say "$src: applying $(basename "$POLL_PATCH")"
    patch -p1 --forward --quiet --no-backup-if-mismatch -d "$src" <"$POLL_PATCH" || die "$POLL_PATCH does not apply to $src"
    ! grep -q 'POLLIN | POLLWRNORM' "$src/v4l2loopback.c" || die "$src still has POLLIN | POLLWRNORM after patching"
}

# The package's postinst builds for the running kernel, which here may have no
# headers at all; build explicitly for the kernel the VM boots.
src_ver=$(loopback_pkg_version | sed 's/^[0-9]*://; s/-[^-]*$//')
[[ -d "/usr/src/v4l2loopback-$src_ver" ]] || die "DKMS source /usr/src/v4l2loopback-$src_ver is missing"
patch_poll "/usr/src/v4l2loopback-$src_ver"
srcversion() { modinfo -k "$kver" -F srcversion v4l2loopback 2>/dev/null || true; }
marker=$POLL_MARKERS/$kver
if dkms status -m v4l2loopback -v "$src_ver" -k "$kver" 2>/dev/null | grep -q ': installed' \
   && [[ -f "$marker" && "$(cat "$marker")" == "$(srcversion)" ]]; then
    say "v4l2loopback/$src_ver already built (with the poll fix) and installed for $kver"
else
    # Installed but without a marker for it: built before the source was patched, so rebuilt.
    say "building v4l2loopback/$src_ver for $kver with dkms"
    dkms build --force "v4l2loopback/$src_ver" -k "$kver" >/dev/null \
        && dkms install --force "v4l2loopback/$src_ver" -k "$kver" >/dev/null \
        || die "dkms failed; see /var/lib/dkms/v4l2loopback/$src_ver/build/make.log"
    install -d "$POLL_MARKERS"
    srcversion >"$marker"
fi
mod_ver=$(modinfo -k "$kver" -F version v4l2loopback 2>/dev/null || true)
at_least "$mod_ver" "$MIN_LOOPBACK" \
    || die "modinfo -k $kver finds v4l2loopback '${mod_ver:-none}', need >= $MIN_LOOPBACK"
say "module: $(modinfo -k "$kver" -n v4l2loopback) (version $mod_ver, srcversion $(srcversion))"

# The kernel tests of the 0.12 fallback (tests/vm/test_loopback_params.py)
# also need bookworm's v4l2loopback 0.12.7 (no control device), built for the
# VM kernel beside the DKMS module. Those tests bind-mount it over the DKMS
# module inside the VM only; nothing on this machine loads it.
LEGACY_DEB=v4l2loopback-dkms_0.12.7-2_all.deb
LEGACY_SHA256=7f2bdae29e28efab6e6f1f8b187266fa3c740d3becab11e1d686b45bfcb22aa9
legacy_ko=/opt/simfarm/v4l2loopback-0.12.7/$kver/v4l2loopback.ko
if [[ -f "$legacy_ko" ]]; then
    say "test module v4l2loopback 0.12.7 already built: $legacy_ko"
else
    say "building the test module v4l2loopback 0.12.7 for $kver"
    work=$(mktemp -d)
    python3 -c 'import sys, urllib.request; urllib.request.urlretrieve(sys.argv[1], sys.argv[2])' \
        "http://deb.debian.org/debian/pool/main/v/v4l2loopback/$LEGACY_DEB" "$work/$LEGACY_DEB" \
        || die "cannot download $LEGACY_DEB from deb.debian.org"
    echo "$LEGACY_SHA256  $work/$LEGACY_DEB" | sha256sum -c --quiet - || die "$LEGACY_DEB: checksum mismatch"
    dpkg-deb -x "$work/$LEGACY_DEB" "$work/pkg"
    patch_poll "$work/pkg/usr/src/v4l2loopback-0.12.7"  # finds the fix there: the bug came in 0.14.0
    make -s -C "/lib/modules/$kver/build" M="$work/pkg/usr/src/v4l2loopback-0.12.7" modules >"$work/make.log" 2>&1 \
        || die "building v4l2loopback 0.12.7 failed: $(tail -n 3 "$work/make.log")"
    install -D -m 0644 "$work/pkg/usr/src/v4l2loopback-0.12.7/v4l2loopback.ko" "$legacy_ko"
    rm -rf "$work"
fi

# virtme-ng: into this Python when pip may write there, else into a private
# venv (PEP 668 forbids pip in Debian's system Python). vng runs `virtme-run`
# from PATH, so both are linked.
python=${PYTHON:-python3}
if command -v vng >/dev/null && command -v virtme-run >/dev/null; then
    say "virtme-ng already installed: $(vng --version 2>&1)"
elif [[ ! -e "$("$python" -c 'import sysconfig; print(sysconfig.get_path("stdlib"))')/EXTERNALLY-MANAGED" ]]; then
    say "pip install virtme-ng (into $(command -v "$python"))"
    "$python" -m pip install -q --disable-pip-version-check 'virtme-ng>=1.30'
    command -v vng >/dev/null || die "vng is not on PATH after pip install (is pyenv rehash needed?)"
else
    say "pip install virtme-ng (into $VNG_VENV)"
    python3 -m venv "$VNG_VENV"
    "$VNG_VENV/bin/pip" install -q --disable-pip-version-check 'virtme-ng>=1.30'
    ln -sf "$VNG_VENV/bin/vng" "$VNG_VENV/bin/virtme-run" /usr/local/bin/
fi
say "ready: $(vng --version 2>&1), qemu $(qemu-system-x86_64 --version | head -n1 | awk '{print $4}'), kernel $kver, v4l2loopback $mod_ver"
