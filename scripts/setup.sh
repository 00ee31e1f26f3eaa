#!/usr/bin/env bash
# Set up napari-lungkd on a fresh Debian/Ubuntu machine: system libraries for napari under a
# (virtual) display, then a virtual environment in .venv with the project installed editable.
# One line per step with the seconds since the start. A second run is a quick check: when
# .venv/.lungkd-setup-stamp holds the hash of pyproject.toml, the torch pins and this script, and
# the packages are still installed (found, not imported), apt and pip are skipped. SETUP_FORCE=1 redoes everything.
set -euo pipefail
cd "$(dirname "$0")/.."

START_MS=$(date +%s%3N)
step() {
  local ms=$(( $(date +%s%3N) - START_MS ))
  printf '[setup %4d.%d s] %s\n' $((ms / 1000)) $((ms % 1000 / 100)) "$*"
}

TORCH_PINS='"torch==2.14.1" "torchvision==0.29.1"'
EXTRAS="all,test,training,fast,bench"
STAMP=.venv/.lungkd-setup-stamp
want=$( { cat pyproject.toml; echo "$TORCH_PINS $EXTRAS"; cat scripts/setup.sh; } | sha256sum | cut -d' ' -f1)

if [ "${SETUP_FORCE:-0}" != 1 ] && [ -x .venv/bin/python ] && [ -f "$STAMP" ] \
  && [ "$(cat "$STAMP")" = "$want" ] \
  && .venv/bin/python -c "import importlib.util as u, sys; sys.exit(not all(u.find_spec(m) for m in ('napari_lungkd', 'torch', 'napari')))" >/dev/null 2>&1; then
  step "up to date: .venv matches pyproject.toml and the torch pins (SETUP_FORCE=1 to redo)"
  exit 0
fi

APT_PACKAGES="xvfb xauth libxcb-cursor0 libxcb-icccm4 libxcb-keysyms1 libxcb-image0 libxcb-render-util0 \
libxkbcommon-x11-0 libxcb-xinerama0 libxcb-shape0 libgl1 libegl1 libglib2.0-0 libfontconfig1 libdbus-1-3"
if command -v apt-get >/dev/null 2>&1; then
  step "checking system libraries (apt)"
  missing=""
  for p in $APT_PACKAGES; do dpkg -s "$p" >/dev/null 2>&1 || missing="$missing $p"; done
  if [ -n "$(echo $missing)" ]; then
    step "installing system libraries:$missing"
    SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends $APT_PACKAGES >/dev/null
  fi
fi

PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  step "creating .venv with $PY"
  "$PY" -m venv .venv
fi
rm -f "$STAMP"
step "upgrading pip"
.venv/bin/python -m pip install -q --upgrade pip
# torch first, pinned: on this kind of machine pip takes these two from the local disk.
step "installing torch and torchvision (pinned)"
eval .venv/bin/python -m pip install -q $TORCH_PINS
step "installing napari-lungkd editable with [$EXTRAS]"
.venv/bin/python -m pip install -q -e ".[$EXTRAS]"
echo "$want" > "$STAMP"
step "napari-lungkd is set up in .venv"
