"""Checking and decoding what users upload: images (Pillow), audio (soundfile), tables.

Every check raises ``InputValidationError`` with what is wrong and the limit that applies,
so a text file passed as an image or a two-hour recording gets a sentence, not a stack
trace. Both backends use these: the UI checks a file once before sending it anywhere and the
local backend decodes it for its model.
"""

from __future__ import annotations

import csv
import io
from collections import Counter
from math import ceil, gcd
from pathlib import Path

import numpy as np
import soundfile
from PIL import Image, UnidentifiedImageError

from backends.errors import InputValidationError

MAX_IMAGE_BYTES = 20 * 1024 * 1024
MAX_IMAGE_PIXELS = 40_000_000  # ~ 6300 × 6300
MAX_AUDIO_BYTES = 50 * 1024 * 1024
MAX_AUDIO_SECONDS = 10 * 60
MIN_SAMPLE_RATE = 4_000
MAX_SAMPLE_RATE = 192_000
MAX_TABLE_BYTES = 10 * 1024 * 1024
MAX_TABLE_ROWS = 10_000
MAX_TABLE_COLUMNS = 200

AUDIO_FORMATS = "WAV, FLAC, OGG/Vorbis, Opus or MP3"


def _mb(n: int) -> str:
    return f"{n / 1024 / 1024:.0f} MB"


def read_bytes(source: bytes | str | Path, *, what: str, limit: int) -> bytes:
    """The bytes of an upload (a path or bytes), refusing more than ``limit``."""
    if isinstance(source, (str, Path)):
        path = Path(source)
        if not path.is_file():
            raise InputValidationError(
                f"No {what} file at {path.name!r}.", hint=f"Upload the {what} again."
            )
        size = path.stat().st_size
        if size > limit:
            raise InputValidationError(
                f"The {what} file is {_mb(size)}; the limit is {_mb(limit)}.",
                hint=f"Upload a smaller {what}.",
            )
        return path.read_bytes()
    if len(source) > limit:
        raise InputValidationError(
            f"The {what} is {_mb(len(source))}; the limit is {_mb(limit)}.",
            hint=f"Upload a smaller {what}.",
        )
    return bytes(source)


# -- images -----------------------------------------------------------------------------


def check_image(source: bytes | str | Path) -> bytes:
    """The image's bytes after checking that Pillow can decode them and the size is sane."""
    data = read_bytes(source, what="image", limit=MAX_IMAGE_BYTES)
    if not data:
        raise InputValidationError("The image is empty.", hint="Upload a PNG, JPEG or WebP image.")
    decode_image(data)
    return data


def decode_image(data: bytes) -> Image.Image:
    """An RGB ``PIL.Image`` from encoded bytes. Raises ``InputValidationError``."""
    try:
        with Image.open(io.BytesIO(data)) as probe:
            width, height = probe.size
            if width * height > MAX_IMAGE_PIXELS:
                raise InputValidationError(
                    f"The image is {width}×{height} pixels; the limit is "
                    f"{MAX_IMAGE_PIXELS / 1e6:.0f} megapixels.",
                    hint="Resize it and upload it again.",
                )
            probe.verify()  # catches truncated files that open() alone accepts
        image = Image.open(io.BytesIO(data))
        image.load()
    except InputValidationError:
        raise
    except Image.DecompressionBombError as exc:
        # Pillow refuses past ~179 megapixels inside open(), before our own size check.
        raise InputValidationError(
            f"The image is larger than the limit of {MAX_IMAGE_PIXELS / 1e6:.0f} megapixels.",
            hint="Resize it and upload it again.",
        ) from exc
    except (
        UnidentifiedImageError,
        OSError,
        SyntaxError,
        ValueError,
    ) as exc:
        raise InputValidationError(
            "This file is not an image Pillow can read.",
            hint="Upload a PNG, JPEG, WebP, GIF or BMP image.",
        ) from exc
    return image.convert("RGB")


def encode_png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


# -- audio ------------------------------------------------------------------------------


def check_audio(source: bytes | str | Path) -> bytes:
    """The audio's bytes after checking that it decodes, its sample rate and its length."""
    data = read_bytes(source, what="audio", limit=MAX_AUDIO_BYTES)
    info = _audio_info(data)
    if not MIN_SAMPLE_RATE <= info.samplerate <= MAX_SAMPLE_RATE:
        raise InputValidationError(
            f"The audio's sample rate is {info.samplerate} Hz; supported: "
            f"{MIN_SAMPLE_RATE}–{MAX_SAMPLE_RATE} Hz.",
            hint="Resample it (e.g. to 16000 Hz) and upload it again.",
        )
    if info.frames <= 0:
        raise InputValidationError(
            "The audio has no samples.", hint="Upload a recording with sound in it."
        )
    seconds = info.frames / info.samplerate
    if seconds > MAX_AUDIO_SECONDS:
        # Whole seconds, rounded up: "10.0 min" for 601 s would read as within the limit.
        minutes, rest = divmod(ceil(seconds), 60)
        raise InputValidationError(
            f"The audio lasts {minutes} min {rest} s; the limit is {MAX_AUDIO_SECONDS // 60} min.",
            hint="Cut it into shorter pieces.",
        )
    return data


def _audio_info(data: bytes) -> soundfile._SoundFileInfo:
    try:
        return soundfile.info(io.BytesIO(data))
    except (soundfile.LibsndfileError, RuntimeError, TypeError) as exc:
        raise InputValidationError(
            "This file is not audio that can be decoded (corrupt or an unsupported format).",
            hint=f"Upload {AUDIO_FORMATS}.",
        ) from exc


def decode_audio(data: bytes, *, sampling_rate: int | None = None) -> tuple[np.ndarray, int]:
    """Mono float32 samples and their rate; resampled to ``sampling_rate`` when given (the
    rate the model was trained on). Raises ``InputValidationError``."""
    check_audio(data)
    try:
        samples, rate = soundfile.read(io.BytesIO(data), dtype="float32", always_2d=True)
    except (soundfile.LibsndfileError, RuntimeError) as exc:
        raise InputValidationError(
            "The audio could not be decoded (the file is corrupt).", hint=f"Upload {AUDIO_FORMATS}."
        ) from exc
    mono = samples.mean(axis=1)
    if sampling_rate and sampling_rate != rate:
        mono = resample(mono, rate, sampling_rate)
        rate = sampling_rate
    return np.ascontiguousarray(mono, dtype=np.float32), int(rate)


def resample(samples: np.ndarray, source_rate: int, target_rate: int) -> np.ndarray:
    """Polyphase resampling (scipy), exact for integer rate ratios."""
    from scipy.signal import resample_poly

    divisor = gcd(int(source_rate), int(target_rate))
    return resample_poly(samples, target_rate // divisor, source_rate // divisor).astype(np.float32)


def encode_wav(samples: np.ndarray, sampling_rate: int) -> bytes:
    """16-bit PCM WAV bytes (what InferenceClient's text_to_speech returns is audio bytes)."""
    buffer = io.BytesIO()
    array = np.asarray(samples, dtype=np.float32)
    if array.ndim > 1:
        array = array.squeeze()
    soundfile.write(
        buffer, np.clip(array, -1.0, 1.0), int(sampling_rate), format="WAV", subtype="PCM_16"
    )
    return buffer.getvalue()


# -- tables -----------------------------------------------------------------------------


def check_table(table: dict[str, list]) -> dict[str, list[str]]:
    """InferenceClient's table shape ``{column: [cell, …]}`` with string cells, checked:
    at least one column and one row, equal column lengths, within the limits."""
    if not table:
        raise InputValidationError(
            "The table is empty.", hint="Type some rows or upload a CSV file."
        )
    columns = {str(name).strip(): list(cells) for name, cells in table.items()}
    if "" in columns:
        raise InputValidationError("A column has no name.", hint="Give every column a header.")
    if len(columns) != len(table):
        raise InputValidationError(
            "Two columns have the same name.", hint="Give every column its own name."
        )
    if len(columns) > MAX_TABLE_COLUMNS:
        raise InputValidationError(
            f"The table has {len(columns)} columns; the limit is {MAX_TABLE_COLUMNS}."
        )
    lengths = {len(cells) for cells in columns.values()}
    if len(lengths) != 1:
        raise InputValidationError("The table's columns have different lengths.")
    rows = lengths.pop()
    if rows == 0:
        raise InputValidationError(
            "The table has no rows.", hint="Type some rows or upload a CSV file."
        )
    if rows > MAX_TABLE_ROWS:
        raise InputValidationError(
            f"The table has {rows} rows; the limit is {MAX_TABLE_ROWS}.", hint="Upload fewer rows."
        )
    return {
        name: ["" if cell is None else str(cell) for cell in cells]
        for name, cells in columns.items()
    }


def _header_width(data: bytes) -> int:
    """How many fields the first row has (quotes respected), without building a table;
    0 when the csv module cannot read it (pandas then says why)."""
    rows = csv.reader(io.StringIO(data.decode("utf-8", errors="replace")))
    try:
        return len(next(rows, []))
    except csv.Error:  # e.g. a quoted field past the csv module's field size limit
        return 0


def read_csv(source: bytes | str | Path) -> dict[str, list[str]]:
    """A CSV upload as a checked table (all cells strings)."""
    import pandas

    data = read_bytes(source, what="CSV", limit=MAX_TABLE_BYTES)
    if not data.strip():
        raise InputValidationError("The CSV file is empty.", hint="Upload a CSV with a header row.")
    # Before pandas: a 10 MB header row holds millions of columns, which pandas (and the
    # checks below) would take minutes to build a table of, only to refuse it.
    width = _header_width(data)
    if width > MAX_TABLE_COLUMNS:
        raise InputValidationError(
            f"The CSV file has {width} columns; the limit is {MAX_TABLE_COLUMNS}.",
            hint="Upload fewer columns.",
        )
    try:
        # header=None: pandas would rename a repeated header ("a" → "a.1") and, when rows
        # have one field more than the header, silently take the first column as the index.
        # Read as plain rows, every row must have the header's field count.
        frame = pandas.read_csv(
            io.BytesIO(data),
            header=None,
            dtype=str,
            keep_default_na=False,
            nrows=MAX_TABLE_ROWS + 2,
        )
    except (pandas.errors.ParserError, UnicodeDecodeError, ValueError) as exc:
        raise InputValidationError(
            f"The CSV file could not be read: {str(exc).splitlines()[0]}",
            hint="Upload a comma-separated UTF-8 file with a header row.",
        ) from exc
    header, rows = [str(name).strip() for name in frame.iloc[0]], frame.iloc[1:]
    counts = Counter(header)
    repeated = sorted(name for name, count in counts.items() if name and count > 1)
    if repeated:
        raise InputValidationError(
            f"The CSV file has two columns named {repeated[0]!r}.",
            hint="Give every column its own name.",
        )
    return check_table({name: rows[i].tolist() for i, name in enumerate(header)})
