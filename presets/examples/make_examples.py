"""Regenerate the example media in this folder: ``python presets/examples/make_examples.py``.

Everything is drawn or synthesized here (no downloads), so the files are small and free to
ship. Speech uses espeak-ng when installed (``apt-get install -y espeak-ng``), else a tone.
"""

from __future__ import annotations

import io
import shutil
import subprocess
from pathlib import Path

import numpy as np
import soundfile
from PIL import Image, ImageDraw, ImageFont

HERE = Path(__file__).parent
RATE = 16_000
SENTENCE = "The quick brown fox jumps over the lazy dog."


def shapes() -> None:
    """A street-ish scene of simple shapes with a caption, for the image tasks."""
    image = Image.new("RGB", (480, 320), (135, 190, 235))
    draw = ImageDraw.Draw(image)
    draw.rectangle((0, 230, 480, 320), fill=(90, 160, 80))
    draw.ellipse((370, 25, 440, 95), fill=(250, 210, 60))
    draw.rectangle((40, 120, 200, 240), fill=(200, 60, 50), outline=(60, 20, 20), width=3)
    draw.polygon([(30, 120), (120, 55), (210, 120)], fill=(120, 70, 40))
    draw.rectangle((100, 180, 140, 240), fill=(70, 45, 30))
    draw.rounded_rectangle((250, 190, 420, 250), radius=18, fill=(40, 90, 200))
    draw.ellipse((270, 235, 310, 275), fill=(30, 30, 30))
    draw.ellipse((360, 235, 400, 275), fill=(30, 30, 30))
    draw.text((240, 285), "HOUSE, CAR, SUN", fill=(255, 255, 255), font=_font(22))
    image.save(HERE / "shapes.png", optimize=True)


def invoice() -> None:
    """A small scanned-looking invoice, for document question answering."""
    image = Image.new("RGB", (420, 300), "white")
    draw = ImageDraw.Draw(image)
    lines = [
        ("INVOICE #1042", 26),
        ("Date: 2024-03-15", 18),
        ("Bill to: Ada Lovelace", 18),
        ("2 x Notebook          $9.00", 18),
        ("1 x Fountain pen     $24.50", 18),
        ("TOTAL: $42.50", 24),
    ]
    y = 20
    for text, size in lines:
        draw.text((24, y), text, fill="black", font=_font(size))
        y += size + 22
    image.save(HERE / "invoice.png", optimize=True)


def _font(size: int) -> ImageFont.ImageFont:
    return ImageFont.load_default(size=size)


def speech() -> None:
    """A short spoken sentence (16 kHz mono), and the same with noise added."""
    samples = _espeak(SENTENCE)
    if samples is None:
        t = np.arange(int(RATE * 2.0)) / RATE
        samples = (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
    soundfile.write(HERE / "speech.wav", samples, RATE, subtype="PCM_16")
    noise = np.random.default_rng(0).normal(0, 0.03, samples.shape).astype(np.float32)
    soundfile.write(HERE / "noisy_speech.wav", np.clip(samples + noise, -1, 1), RATE, "PCM_16")


def _espeak(text: str) -> np.ndarray | None:
    if shutil.which("espeak-ng") is None:
        return None
    wav = subprocess.run(
        ["espeak-ng", "-v", "en-us", "-s", "150", "--stdout", text], capture_output=True, check=True
    ).stdout
    samples, rate = soundfile.read(io.BytesIO(wav), dtype="float32")
    from scipy.signal import resample_poly

    return resample_poly(samples, RATE, rate).astype(np.float32)


if __name__ == "__main__":
    shapes()
    invoice()
    speech()
