#!/usr/bin/env bash
# Install the Liens kiosk on a Debian 12 / Raspberry Pi OS (bookworm) tablet, as root:
#   sudo ./deploy/kiosk/install.sh [--source DIR] [--diagonal-inches 10]
# Installs cage and PipeWire, creates the liens-kiosk user, a venv in /opt/liens, the PipeWire
# echo-cancel drop-in and the systemd unit, then enables it (it starts at the next boot, or now
# with `systemctl start liens-kiosk`). Re-running it upgrades the app in place.
set -euo pipefail

SOURCE="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
DIAGONAL_INCHES=10
PREFIX=/opt/liens
DATA_DIR=/var/lib/liens-kiosk
KIOSK_USER=liens-kiosk
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

while [ $# -gt 0 ]; do
    case "$1" in
        --source) SOURCE="$2"; shift 2 ;;
        --diagonal-inches) DIAGONAL_INCHES="$2"; shift 2 ;;
        -h|--help) sed -n '2,7p' "$0"; exit 0 ;;
        *) echo "unknown option: $1" >&2; exit 2 ;;
    esac
done

if [ "$(id -u)" != "0" ]; then
    echo "Run as root: sudo $0 $*" >&2
    exit 1
fi

echo "== system packages"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
# cage: the kiosk compositor; PipeWire + WirePlumber (+ pulse for SDL's audio and for pactl, with
# which the app sees that the default microphone is echo-cancelled; + its ALSA plugin, through
# which PortAudio's duplex call stream reaches PipeWire) with the WebRTC echo canceller; SpeexDSP,
# the app's linear echo canceller in front of WebRTC's (kiosk/audio/speex.py); Mesa for
# GL; fonts for accents; Python with venv; cairo for KivyMD's pycairo; espeak-ng for the optional
# spoken announcements.
apt-get install -y -qq --no-install-recommends \
    cage pipewire pipewire-audio-client-libraries pipewire-pulse pipewire-alsa wireplumber \
    pulseaudio-utils libportaudio2 libspeexdsp1 \
    libspa-0.2-modules libgl1-mesa-dri libegl1 libgles2 fonts-dejavu-core \
    python3 python3-venv python3-dev build-essential libcairo2-dev pkg-config \
    espeak-ng

echo "== user $KIOSK_USER"
if ! id "$KIOSK_USER" >/dev/null 2>&1; then
    useradd --system --create-home --home-dir "/home/$KIOSK_USER" --shell /usr/sbin/nologin \
        --groups video,audio,input,render "$KIOSK_USER"
fi
install -d -o "$KIOSK_USER" -g "$KIOSK_USER" -m 700 "$DATA_DIR"
# PipeWire runs in the kiosk user's session; lingering keeps /run/user/UID for the service.
loginctl enable-linger "$KIOSK_USER" || true

echo "== app in $PREFIX"
install -d "$PREFIX"
if [ "$SOURCE" != "$PREFIX/src" ]; then
    rm -rf "$PREFIX/src"
    cp -a "$SOURCE" "$PREFIX/src"
    rm -rf "$PREFIX/src/.venv" "$PREFIX/src/.git"
fi
python3 -m venv "$PREFIX/.venv"
"$PREFIX/.venv/bin/pip" install -q --upgrade pip
# argon2-cffi: the staff PIN is checked on the tablet, offline.
"$PREFIX/.venv/bin/pip" install -q "$PREFIX/src[kiosk]" argon2-cffi

echo "== screen density"
# Kivy's sizes (dp, sp, mm) follow the real screen only when told its dpi and density.
read -r WIDTH HEIGHT < <(
    (cat /sys/class/graphics/fb0/virtual_size 2>/dev/null || echo "1280,800") | tr ',' ' '
)
python3 - "$WIDTH" "$HEIGHT" "$DIAGONAL_INCHES" > /etc/default/liens-kiosk <<'PY'
import math, sys
w, h, inches = float(sys.argv[1]), float(sys.argv[2]), float(sys.argv[3])
dpi = math.hypot(w, h) / inches
print("# Written by deploy/kiosk/install.sh: this tablet's screen (%dx%d, %g\")." % (w, h, inches))
print("KIVY_DPI=%.0f" % dpi)
print("KIVY_METRICS_DENSITY=%.2f" % (dpi / 160))
PY

echo "== PipeWire echo cancellation"
install -d /etc/pipewire/pipewire.conf.d
install -m 644 "$HERE/50-liens-echo-cancel.conf" /etc/pipewire/pipewire.conf.d/
systemctl --global enable pipewire.socket pipewire-pulse.socket wireplumber.service || true

echo "== systemd unit"
install -m 644 "$HERE/liens-kiosk.service" /etc/systemd/system/liens-kiosk.service
systemctl daemon-reload
systemctl set-default graphical.target
systemctl disable getty@tty1.service || true
systemctl enable liens-kiosk.service

echo "Done. Start it now with: systemctl start liens-kiosk"
echo "Then enrol the tablet with a code from the staff dashboard."
