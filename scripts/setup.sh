#!/usr/bin/env bash
# Set up napari-lungkd on a fresh Debian/Ubuntu machine: system libraries for napari under a
# (virtual) display, then a virtual environment in .venv with the project installed editable.
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES="xvfb xauth libxcb-cursor0 libxcb-icccm4 libxcb-keysyms1 libxcb-image0 libxcb-render-util0 \
libxkbcommon-x11-0 libxcb-xinerama0 libxcb-shape0 libgl1 libegl1 libglib2.0-0 libfontconfig1 libdbus-1-3"
if command -v apt-get >/dev/null 2>&1; then
  missing=$(dpkg-query -W -f='${Status} ${Package}\n' $APT_PACKAGES 2>/dev/null | grep -v '^install ok installed' | awk '{print $NF}' || true)
  for p in $APT_PACKAGES; do dpkg -s "$p" >/dev/null 2>&1 || missing="$missing $p"; done
  if [ -n "$(echo $missing)" ]; then
    SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends $APT_PACKAGES >/dev/null
  fi
fi

PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
# torch first, pinned: on this kind of machine pip takes these two from the local disk.
.venv/bin/python -m pip install -q "torch==2.14.1" "torchvision==0.29.1"
.venv/bin/python -m pip install -q -e ".[all,test,training,fast,bench]"
echo "napari-lungkd is set up in .venv"
