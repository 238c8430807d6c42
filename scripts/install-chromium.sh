#!/usr/bin/env bash
# Installs Debian's Chromium for the browser tests (Playwright cannot download its own
# browser without internet access), and Tesseract, the OCR that local document question
# answering runs through pytesseract. Needs root or passwordless sudo; otherwise says what
# to run. Exits 0 when both are already there.
set -euo pipefail
CHROMIUM=${PLAYGROUND_CHROMIUM:-/usr/bin/chromium}
if [ -x "$CHROMIUM" ] && command -v tesseract >/dev/null; then
  exit 0
fi
if [ "$(id -u)" -eq 0 ]; then
  SUDO=""
elif command -v sudo >/dev/null && sudo -n true 2>/dev/null; then
  SUDO="sudo -n"
else
  echo "Chromium or Tesseract is missing and this user cannot install them." >&2
  echo "Run: sudo apt-get update && sudo apt-get install -y chromium tesseract-ocr" >&2
  echo "(browser tests are skipped without it, and fail when CI=true)" >&2
  exit 0
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
# fonts-noto-color-emoji: the UI uses a few emoji; without it screenshots show boxes.
$SUDO apt-get install -y -qq chromium fonts-noto-color-emoji tesseract-ocr >/dev/null
echo "Installed $("$CHROMIUM" --version)"
