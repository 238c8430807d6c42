"""Upload checks and decoding (backends/media.py): every bad upload gets a sentence that
says what is wrong and names the limit, never a stack trace; good uploads decode to what
the models expect (RGB images, mono float32 audio at the model's rate, string tables)."""

from __future__ import annotations

import io
import os
import struct
import threading
import zlib
from pathlib import Path

import numpy as np
import pytest
import soundfile
from PIL import Image

from backends import media
from backends.errors import InputValidationError

# -- helpers: small real files ------------------------------------------------------------------


def png(width: int = 16, height: int = 12, noise: bool = False) -> bytes:
    if noise:  # incompressible, so a cut lands inside the pixel data
        pixels = np.random.default_rng(0).integers(0, 255, (height, width, 3), dtype=np.uint8)
        image = Image.fromarray(pixels)
    else:
        image = Image.new("RGB", (width, height), (10, 20, 30))
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def png_header_only(width: int, height: int) -> bytes:
    """A PNG that declares width × height but holds no pixels: a few dozen bytes, so a
    decompression bomb's header costs nothing to build."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(kind + data) & 0xFFFFFFFF
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)  # 8-bit RGB
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IEND", b"")


def wav(samples: np.ndarray, rate: int, subtype: str = "PCM_16", fmt: str = "WAV") -> bytes:
    buffer = io.BytesIO()
    soundfile.write(buffer, samples, rate, format=fmt, subtype=subtype)
    return buffer.getvalue()


def sine(frequency: float, rate: int, seconds: float) -> np.ndarray:
    t = np.arange(int(rate * seconds)) / rate
    return (0.5 * np.sin(2 * np.pi * frequency * t)).astype(np.float32)


def peak_hz(samples: np.ndarray, rate: int) -> float:
    spectrum = np.abs(np.fft.rfft(samples))
    return float(np.fft.rfftfreq(len(samples), 1 / rate)[np.argmax(spectrum)])


def sparse_file(path: Path, size: int) -> Path:
    """A file of ``size`` bytes that takes no disk space or time to make."""
    with path.open("wb") as handle:
        os.truncate(handle.fileno(), size)
    return path


# -- images ---------------------------------------------------------------------------------


def test_a_good_image_decodes_to_rgb():
    image = media.decode_image(png(16, 12))
    assert image.mode == "RGB" and image.size == (16, 12)
    assert image.getpixel((0, 0)) == (10, 20, 30)
    assert media.check_image(png()) == png()


def test_a_text_file_as_an_image():
    with pytest.raises(InputValidationError) as info:
        media.check_image(b"name,stars\ntransformers,36542\n")
    assert info.value.message == "This file is not an image Pillow can read."
    assert "PNG, JPEG" in info.value.hint


def test_an_empty_image():
    with pytest.raises(InputValidationError, match="The image is empty"):
        media.check_image(b"")


@pytest.mark.parametrize("keep", [0.5, 0.9, 0.99])
def test_a_truncated_png(keep):
    data = png(64, 64, noise=True)
    with pytest.raises(InputValidationError, match="not an image Pillow can read"):
        media.decode_image(data[: int(len(data) * keep)])


@pytest.mark.parametrize(("width", "height"), [(20_000, 20_000), (8_000, 8_000)])
def test_an_image_over_the_pixel_limit(width, height):
    # 20000×20000 also trips Pillow's own decompression-bomb guard inside Image.open; the
    # user must still hear about the size limit, not "not an image".
    with pytest.raises(InputValidationError) as info:
        media.check_image(png_header_only(width, height))
    assert "40 megapixels" in info.value.message
    assert "Resize" in info.value.hint


def test_the_pixel_limit_is_the_module_setting(monkeypatch):
    monkeypatch.setattr(media, "MAX_IMAGE_PIXELS", 100)
    media.check_image(png(10, 10))
    with pytest.raises(InputValidationError, match=r"11×10 pixels; the limit is 0 megapixels"):
        media.check_image(png(11, 10))


def test_an_image_file_over_the_byte_limit(tmp_path):
    path = sparse_file(tmp_path / "huge.png", 30 * 1024 * 1024)
    with pytest.raises(InputValidationError) as info:
        media.check_image(path)
    assert info.value.message == "The image file is 30 MB; the limit is 20 MB."


def test_image_bytes_over_the_byte_limit(monkeypatch):
    monkeypatch.setattr(media, "MAX_IMAGE_BYTES", 1024 * 1024)
    with pytest.raises(InputValidationError, match="The image is 2 MB; the limit is 1 MB"):
        media.check_image(b"\0" * 2 * 1024 * 1024)


def test_a_missing_upload(tmp_path):
    with pytest.raises(InputValidationError, match="No image file at 'gone.png'") as info:
        media.check_image(tmp_path / "gone.png")
    assert "again" in info.value.hint


def test_an_image_from_a_path(tmp_path):
    path = tmp_path / "ok.png"
    path.write_bytes(png())
    assert media.check_image(str(path)) == png()


# -- audio ----------------------------------------------------------------------------------


def test_corrupt_audio():
    with pytest.raises(InputValidationError) as info:
        media.check_audio(b"RIFF\x10\x00\x00\x00WAVEfmt this is not audio")
    assert "not audio that can be decoded" in info.value.message
    assert "WAV, FLAC" in info.value.hint


def test_an_image_as_audio():
    with pytest.raises(InputValidationError, match="not audio that can be decoded"):
        media.decode_audio(png())


def test_audio_with_no_samples():
    with pytest.raises(InputValidationError, match="The audio has no samples"):
        media.check_audio(wav(np.zeros(0, np.float32), 16_000))


def test_audio_over_the_length_limit():
    # 10 min 1 s at the lowest supported rate in 8-bit: 2.4 MB, made in milliseconds.
    data = wav(np.zeros(4_000 * 601, np.float32), 4_000, subtype="PCM_U8")
    with pytest.raises(InputValidationError) as info:
        media.check_audio(data)
    assert info.value.message == "The audio lasts 10 min 1 s; the limit is 10 min."
    assert "shorter" in info.value.hint


def test_the_length_limit_is_the_module_setting(monkeypatch):
    monkeypatch.setattr(media, "MAX_AUDIO_SECONDS", 60)
    media.check_audio(wav(np.zeros(8_000 * 60, np.float32), 8_000))
    with pytest.raises(InputValidationError, match="lasts 1 min 1 s; the limit is 1 min"):
        media.check_audio(wav(np.zeros(8_000 * 61, np.float32), 8_000))


@pytest.mark.parametrize("rate", [2_000, 400_000])
def test_an_unsupported_sample_rate(rate):
    data = wav(np.zeros(rate // 10, np.float32), rate)
    with pytest.raises(InputValidationError) as info:
        media.check_audio(data)
    assert info.value.message == (
        f"The audio's sample rate is {rate} Hz; supported: 4000–192000 Hz."
    )
    assert "16000 Hz" in info.value.hint


@pytest.mark.parametrize("rate", [4_000, 192_000])
def test_the_sample_rate_limits_are_inclusive(rate):
    data = wav(np.zeros(rate // 10, np.float32), rate)
    assert media.check_audio(data) == data


def test_audio_over_the_byte_limit(tmp_path):
    path = sparse_file(tmp_path / "long.wav", 60 * 1024 * 1024)
    with pytest.raises(InputValidationError) as info:
        media.check_audio(path)
    assert info.value.message == "The audio file is 60 MB; the limit is 50 MB."


def test_resampling_8k_to_16k_keeps_length_and_pitch():
    samples = sine(440.0, 8_000, 1.0)
    decoded, rate = media.decode_audio(wav(samples, 8_000), sampling_rate=16_000)
    assert rate == 16_000
    assert decoded.dtype == np.float32 and decoded.ndim == 1
    assert len(decoded) == 16_000  # twice the samples for the same second
    assert abs(peak_hz(decoded, 16_000) - 440.0) <= 1.0  # same tone, not an octave off
    assert abs(peak_hz(samples, 8_000) - 440.0) <= 1.0


def test_resampling_an_uneven_ratio():
    samples = sine(1_000.0, 44_100, 0.5)
    out = media.resample(samples, 44_100, 16_000)
    assert len(out) == 8_000
    assert abs(peak_hz(out, 16_000) - 1_000.0) <= 2.0


def test_no_resampling_without_a_target_rate():
    samples = sine(300.0, 22_050, 0.2)
    decoded, rate = media.decode_audio(wav(samples, 22_050, subtype="FLOAT"))
    assert rate == 22_050
    np.testing.assert_array_equal(decoded, samples)


def test_stereo_becomes_mono():
    left = np.full(1_600, 0.5, np.float32)
    right = np.full(1_600, -0.25, np.float32)
    decoded, rate = media.decode_audio(
        wav(np.stack([left, right], axis=1), 16_000, subtype="FLOAT")
    )
    assert decoded.shape == (1_600,) and rate == 16_000
    np.testing.assert_allclose(decoded, 0.125)  # the channels' mean


def test_flac_decodes():
    samples = sine(440.0, 16_000, 0.25)
    decoded, _ = media.decode_audio(wav(samples, 16_000, fmt="FLAC"))
    np.testing.assert_allclose(decoded, samples, atol=1e-4)


def test_encode_wav_round_trip():
    samples = sine(440.0, 24_000, 0.5)
    data = media.encode_wav(samples, 24_000)
    assert data[:4] == b"RIFF" and data[8:12] == b"WAVE"
    decoded, rate = media.decode_audio(data)
    assert rate == 24_000
    np.testing.assert_allclose(decoded, samples, atol=1 / 32_768 + 1e-6)  # 16-bit PCM


def test_encode_wav_squeezes_and_clips():
    # A (1, n) model output, with values past full scale.
    samples = np.array([[0.0, 2.0, -2.0, 0.5]], np.float32)
    decoded, _ = media.decode_audio(media.encode_wav(samples, 16_000))
    np.testing.assert_allclose(decoded, [0.0, 1.0, -1.0, 0.5], atol=1e-4)


# -- tables ---------------------------------------------------------------------------------


def test_a_csv_becomes_a_string_table():
    data = b'Repository,Stars\nTransformers,36542\n"Datasets, v2",4512\n'
    assert media.read_csv(data) == {
        "Repository": ["Transformers", "Datasets, v2"],
        "Stars": ["36542", "4512"],  # strings, as InferenceClient sends them
    }


def test_empty_cells_stay_empty_strings():
    # keep_default_na=False: "NA" or "" is text, never NaN.
    assert media.read_csv(b"a,b,c\n1,,NA\n") == {"a": ["1"], "b": [""], "c": ["NA"]}


def test_a_short_row_is_padded_with_empty_cells():
    assert media.read_csv(b"a,b,c\n1,2\n") == {"a": ["1"], "b": ["2"], "c": [""]}


def test_a_csv_over_the_size_limit(tmp_path):
    path = sparse_file(tmp_path / "big.csv", 100 * 1024 * 1024)
    with pytest.raises(InputValidationError) as info:
        media.read_csv(path)
    assert info.value.message == "The CSV file is 100 MB; the limit is 10 MB."
    assert "smaller" in info.value.hint


@pytest.mark.parametrize("data", [b"", b"\n\n  \n"])
def test_an_empty_csv(data):
    with pytest.raises(InputValidationError, match="The CSV file is empty") as info:
        media.read_csv(data)
    assert "header row" in info.value.hint


def test_a_csv_with_only_a_header():
    with pytest.raises(InputValidationError, match="The table has no rows"):
        media.read_csv(b"a,b\n")


def test_a_row_with_more_fields_than_the_header():
    # pandas would otherwise take the first column as the index and shift every value.
    with pytest.raises(InputValidationError) as info:
        media.read_csv(b"a,b\n1,2,3\n")
    assert "Expected 2 fields in line 2, saw 3" in info.value.message


def test_duplicate_csv_columns():
    # pandas would otherwise rename the second one "a.1".
    with pytest.raises(InputValidationError, match="two columns named 'a'"):
        media.read_csv(b"a,b,a\n1,2,3\n")


def test_a_csv_column_without_a_name():
    with pytest.raises(InputValidationError, match="A column has no name"):
        media.read_csv(b"a,,c\n1,2,3\n")


@pytest.mark.parametrize("columns", [201, 100_000, 4 * 1024 * 1024])
def test_a_csv_bomb_of_columns_is_refused_before_a_table_is_built(columns):
    # 100 000 columns took pandas and the repeated-name check minutes (quadratic); a 10 MB
    # header row holds millions. The refusal comes from the header row alone.
    data = b"a," * columns + b"a\n1\n"  # up to 8 MB: within the size limit
    done = threading.Event()
    outcome: list[BaseException] = []

    def read() -> None:
        try:
            media.read_csv(data)
        except BaseException as exc:  # noqa: BLE001 - handed to the test's thread
            outcome.append(exc)
        done.set()

    threading.Thread(target=read, daemon=True).start()
    assert done.wait(60), "read_csv hangs on a CSV bomb"
    assert isinstance(outcome[0], InputValidationError)
    assert outcome[0].message == f"The CSV file has {columns + 1} columns; the limit is 200."


def test_not_utf8():
    with pytest.raises(InputValidationError, match="could not be read") as info:
        media.read_csv("name\nMüller\n".encode("utf-16"))
    assert "UTF-8" in info.value.hint


def test_too_many_rows(monkeypatch):
    rows = "\n".join(str(i) for i in range(10_001))
    with pytest.raises(InputValidationError) as info:
        media.read_csv(f"n\n{rows}\n".encode())
    assert info.value.message == "The table has 10001 rows; the limit is 10000."
    monkeypatch.setattr(media, "MAX_TABLE_ROWS", 3)
    assert media.read_csv(b"n\n1\n2\n3\n") == {"n": ["1", "2", "3"]}


def test_check_table_shapes():
    assert media.check_table({" a ": [1, None], "b": ["x", "y"]}) == {
        "a": ["1", ""],
        "b": ["x", "y"],
    }
    cases = [
        ({}, "The table is empty."),
        ({"a": []}, "The table has no rows."),
        ({"a": ["1"], "b": ["1", "2"]}, "The table's columns have different lengths."),
        ({"a": ["1"], " a": ["2"]}, "Two columns have the same name."),
        ({"": ["1"]}, "A column has no name."),
        ({f"c{i}": ["1"] for i in range(201)}, "The table has 201 columns; the limit is 200."),
        ({"a": ["1"] * 10_001}, "The table has 10001 rows; the limit is 10000."),
    ]
    for table, message in cases:
        with pytest.raises(InputValidationError) as info:
            media.check_table(table)
        assert info.value.message == message
