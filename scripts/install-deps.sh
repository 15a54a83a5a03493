#!/usr/bin/env bash
# Installs what weightbench needs on a fresh Debian machine that has Rust.
#   scripts/install-deps.sh          running: the system libraries the window loads at run time
#                                    (X11/Wayland, fonts) and Vulkan with Mesa's software driver
#                                    (lavapipe), so wgpu has an adapter without a GPU. Small.
#   scripts/install-deps.sh --test   testing, too: Xvfb and ImageMagick for the GUI tests and
#                                    screenshots, and a Python virtual environment (.venv) with the
#                                    reference libraries the checks compare against (torch among
#                                    them: several GB).
set -euo pipefail
cd "$(dirname "$0")/.."

test=false
case "${1:-}" in
  "") ;;
  --test) test=true ;;
  *) echo "usage: $0 [--test]" >&2; exit 2 ;;
esac

packages=(
  # window and input (loaded at run time by winit)
  libx11-6 libx11-xcb1 libxcursor1 libxi6 libxrandr2 libxkbcommon0 libxkbcommon-x11-0 libxcb-randr0 libwayland-client0
  libfontconfig1 libfreetype6
  # wgpu: Vulkan loader and Mesa's software Vulkan driver (lavapipe), EGL/GL fallback
  libvulkan1 mesa-vulkan-drivers libegl1 libegl-mesa0 libgbm1 libgl1-mesa-dri
)
if $test; then
  packages+=(
    # the GUI tests' and screenshots' private X server, and image tools
    xvfb imagemagick
    # reference checks
    python3 python3-venv python3-pip
  )
fi
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  echo "installing: ${missing[*]}"
  $sudo apt-get update -q
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q --no-install-recommends "${missing[@]}"
fi
$test || exit 0

if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
fi
.venv/bin/python -m pip install -q --disable-pip-version-check -r scripts/reference/requirements.txt
# transformers and torch for the runtime and conversion checks (a large download: torch brings
# CUDA libraries).
.venv/bin/python -m pip install -q --disable-pip-version-check -r scripts/reference/requirements-torch.txt
