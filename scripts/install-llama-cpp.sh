#!/usr/bin/env bash
# Builds llama-cpp-python PORTABLY and installs it into the given Python's environment.
#
#   scripts/install-llama-cpp.sh .venv/bin/python
#
# Why: `pip install llama-cpp-python` compiles llama.cpp with GGML_NATIVE=ON, i.e. for the
# build machine's instruction set. On x86-64 VMs that advertise AVX-512 and AMX a process
# cannot really use, that library dies with SIGILL or SIGSEGV in `decode` (issue 12); a
# wheel built natively on another CPU (pip's cache, a Docker layer) does the same. So:
#   - GGML_NATIVE=OFF with an explicit AVX2 baseline (AVX, AVX2, FMA, F16C, BMI2): runs on
#     every x86-64 CPU since Haswell (2013) / Zen 1, and holds no AVX-512 or AMX code;
#   - runtime CPU dispatch (GGML_BACKEND_DL + GGML_CPU_ALL_VARIANTS) is NOT used: it picks
#     a variant from CPUID, which is exactly what these VMs misreport, llama-cpp-python
#     0.3.36 never calls ggml_backend_load_all() (no CPU backend would be loaded), and it
#     compiles ggml-cpu 14 times (README, "llama.cpp build" has the measurement);
#   - pip's wheel cache is bypassed (--no-cache-dir): the wheel is built here and kept in
#     .cache/wheels/llama-cpp-<hash of version + flags>/, so a native wheel cached by an
#     earlier `pip install` is never reused, and a rebuilt .venv reuses our own build.
#   - LLAVA_BUILD=OFF: the multimodal helper library is not used by the playground.
# Override the flags with LLAMA_CMAKE_ARGS (e.g. "-DGGML_NATIVE=ON" on a machine you trust).
# On non-x86 machines the AVX flags are left out (llama.cpp's defaults for that CPU).
set -euo pipefail
PY=${1:-.venv/bin/python}
cd "$(dirname "$0")/.."
VERSION=$(sed -n 's/^llama-cpp-python==\([0-9.]*\).*/\1/p' requirements-fast.txt)
if [ -z "${LLAMA_CMAKE_ARGS:-}" ]; then
  case "$(uname -m)" in
    x86_64|amd64)
      LLAMA_CMAKE_ARGS="-DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_BMI2=ON -DGGML_AVX512=OFF -DGGML_AMX_TILE=OFF -DGGML_AMX_INT8=OFF -DGGML_AMX_BF16=OFF -DLLAVA_BUILD=OFF" ;;
    *)
      LLAMA_CMAKE_ARGS="-DGGML_NATIVE=OFF -DLLAVA_BUILD=OFF" ;;
  esac
fi
KEY=$(printf '%s %s %s' "$VERSION" "$LLAMA_CMAKE_ARGS" "$(uname -m)" | sha256sum | cut -c1-12)
WHEELS=.cache/wheels/llama-cpp-$KEY
if ! ls "$WHEELS"/llama_cpp_python-"$VERSION"-*.whl >/dev/null 2>&1; then
  echo "Building llama-cpp-python $VERSION portably (compiles llama.cpp: ~10 min on 2 cores)"
  echo "  CMAKE_ARGS=$LLAMA_CMAKE_ARGS"
  mkdir -p "$WHEELS.tmp"
  CMAKE_ARGS="$LLAMA_CMAKE_ARGS" CMAKE_BUILD_PARALLEL_LEVEL=${CMAKE_BUILD_PARALLEL_LEVEL:-$(nproc)} \
    "$PY" -m pip wheel --quiet --no-cache-dir --no-deps --no-binary llama-cpp-python \
    "llama-cpp-python==$VERSION" -w "$WHEELS.tmp"
  rm -rf "$WHEELS" && mv "$WHEELS.tmp" "$WHEELS"
  printf '%s\n' "$LLAMA_CMAKE_ARGS" > "$WHEELS/CMAKE_ARGS"
fi
# --force-reinstall: replace a natively built llama-cpp-python already in this environment.
"$PY" -m pip install --quiet --no-cache-dir --force-reinstall --no-deps "$WHEELS"/llama_cpp_python-"$VERSION"-*.whl
# Its small pure-Python dependencies, pinned in requirements-fast.txt.
grep -v "^llama-cpp-python" requirements-fast.txt | "$PY" -m pip install --quiet --no-deps -r /dev/stdin
"$PY" -c "import sys; from backends.local.engine.probe import main; sys.exit(main(sys.argv[1:]))" check-build
