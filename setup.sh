#!/usr/bin/env bash
# Set up NextFace in ./.venv: the core, the CLI, all six first-party plugins and the FLAME example.
#   ./setup.sh          runtime only
#   ./setup.sh --test   plus the test dependencies
# Environment: PYTHON (default python3), VENV (default .venv),
# TORCH_SPEC (default torch==2.13.0; installed first so no other package picks a torch build).
set -euo pipefail
cd "$(dirname "$0")"
PYTHON=${PYTHON:-python3}
VENV=${VENV:-.venv}
TORCH_SPEC=${TORCH_SPEC:-torch==2.13.0}
extras=""
[ "${1:-}" = "--test" ] && extras="[test,ray,video]"

# Mitsuba's CPU (LLVM) backend needs a shared libLLVM; Debian's libllvm19 works (DESIGN.md §6).
if ! ls /usr/lib/x86_64-linux-gnu/libLLVM.so.19* >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq libllvm19 >/dev/null) \
    || echo "setup: could not install libllvm19; the mitsuba renderer will not run on the CPU" >&2
fi

# The vertex renderer's compiled kernels are built at install with a C++17 compiler.
if ! command -v c++ >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq g++ >/dev/null) \
    || echo "setup: could not install g++; the vertex renderer will use its PyTorch path" >&2
fi

[ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
pip() { "$VENV/bin/python" -m pip --disable-pip-version-check -q "$@"; }
pip install "$TORCH_SPEC"
pip install -e ".$extras" \
  -e plugins/model_basel \
  -e plugins/render_vertex \
  -e plugins/render_mitsuba \
  -e plugins/render_redner \
  -e plugins/landmarks_mediapipe \
  -e plugins/landmarks_fan \
  -e examples/model_flame
echo "setup: NextFace installed in $VENV ($("$VENV/bin/nextface" --version))"
