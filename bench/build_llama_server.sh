#!/usr/bin/env bash
# Builds llama.cpp's own server (llama-server), the benchmark's anchor, from the llama.cpp
# vendored in the pinned llama-cpp-python sdist, with the same portable flags as
# scripts/install-llama-cpp.sh (GGML_NATIVE=OFF, AVX2/FMA/F16C/BMI2, no AVX-512/AMX), so
# both run the same kernels. Cached: .cache/llama-server-<hash>/bin/llama-server.
#
#   bench/build_llama_server.sh        # prints the binary's path (builds it once: minutes)
#
# Optional: `python -m bench` skips the anchor with a note when it is absent.
# Jobs: CMAKE_BUILD_PARALLEL_LEVEL (default 2).
set -euo pipefail
cd "$(dirname "$0")/.."
VERSION=$(sed -n 's/^llama-cpp-python==\([0-9.]*\).*/\1/p' requirements-fast.txt)
PY=${PY:-.venv/bin/python}
if [ -z "${LLAMA_CMAKE_ARGS:-}" ]; then
  case "$(uname -m)" in
    x86_64|amd64)
      LLAMA_CMAKE_ARGS="-DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_BMI2=ON -DGGML_AVX512=OFF -DGGML_AMX_TILE=OFF -DGGML_AMX_INT8=OFF -DGGML_AMX_BF16=OFF" ;;
    *)
      LLAMA_CMAKE_ARGS="-DGGML_NATIVE=OFF" ;;
  esac
fi
KEY=$(printf '%s %s %s server' "$VERSION" "$LLAMA_CMAKE_ARGS" "$(uname -m)" | sha256sum | cut -c1-12)
OUT=.cache/llama-server-$KEY
BIN=$OUT/bin/llama-server
if [ ! -x "$BIN" ]; then
  echo "Building llama-server from llama-cpp-python $VERSION's vendored llama.cpp (minutes)" >&2
  SRC=.cache/llama-cpp-python-src-$VERSION
  if [ ! -d "$SRC/vendor/llama.cpp" ]; then
    mkdir -p .cache/sdist
    ls .cache/sdist/llama_cpp_python-"$VERSION".tar.gz >/dev/null 2>&1 ||
      "$PY" -m pip download --quiet --no-deps --no-binary :all: \
        "llama-cpp-python==$VERSION" -d .cache/sdist
    rm -rf "$SRC.tmp" && mkdir -p "$SRC.tmp"
    tar -xzf .cache/sdist/llama_cpp_python-"$VERSION".tar.gz -C "$SRC.tmp" --strip-components=1
    rm -rf "$SRC" && mv "$SRC.tmp" "$SRC"
  fi
  rm -rf "$OUT.build"
  # shellcheck disable=SC2086
  cmake -S "$SRC/vendor/llama.cpp" -B "$OUT.build" -DCMAKE_BUILD_TYPE=Release \
    -DBUILD_SHARED_LIBS=OFF -DLLAMA_CURL=OFF -DLLAMA_BUILD_TESTS=OFF \
    -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_SERVER=ON -DLLAMA_BUILD_TOOLS=ON \
    $LLAMA_CMAKE_ARGS >&2
  cmake --build "$OUT.build" --target llama-server -j "${CMAKE_BUILD_PARALLEL_LEVEL:-2}" >&2
  mkdir -p "$OUT/bin"
  cp "$OUT.build/bin/llama-server" "$BIN"
  printf '%s\n' "$LLAMA_CMAKE_ARGS" > "$OUT/CMAKE_ARGS"
  rm -rf "$OUT.build"
fi
echo "$BIN"
