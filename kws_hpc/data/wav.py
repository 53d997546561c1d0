"""WAV files: the header walked once (size, rate, channels, encoding), 16-bit PCM read from the bytes.

Every way a clip can be unusable is a `BadClip` with the reason, so the manifest can carry it.
"""

from __future__ import annotations

import io
import struct
from dataclasses import dataclass
from typing import Optional

import numpy as np


class BadClip(Exception):
    """A clip that cannot be used; the message is the reason written to the manifest."""


WAV_ENCODINGS = (1, 3, 0xFFFE)  # PCM, IEEE float, extensible


@dataclass(frozen=True)
class WavHeader:
    """What a WAV's chunks say, read without decoding any audio."""

    encoding: int  # format tag: 1 PCM, 3 float, 0xFFFE extensible, others (ADPCM, mu-law, ...)
    channels: int
    rate: int
    bits: int
    frames: int
    offset: int  # where the audio data starts


def wav_header(fh, size: int) -> WavHeader:
    """Walk a WAV's chunks (seeking, never reading the audio); BadClip when it is not a WAV, its data chunk
    promises more bytes than the file holds (libsndfile would forgive it), or it has no format chunk.
    `fh` is a seekable binary file of `size` bytes, or only its first bytes: EOFError when those end
    before the header does."""
    head = fh.read(12)
    if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
        raise BadClip("not a WAV file (no RIFF/WAVE header)")
    pos, fmt = 12, None
    while pos + 8 <= size:
        fh.seek(pos)
        hdr = fh.read(8)
        if len(hdr) < 8:
            raise EOFError("the bytes given end before the file does")  # a head, not the whole file
        cid, n = hdr[:4], struct.unpack("<I", hdr[4:])[0]
        if cid == b"fmt ":
            fmt = fh.read(min(n, 16))
            if len(fmt) < min(n, 16) and pos + 8 + min(n, 16) <= size:
                raise EOFError("the bytes given end before the file does")
        elif cid == b"data":
            if n > size - pos - 8:
                raise BadClip(f"truncated WAV: header declares {n} bytes of audio, file holds {size - pos - 8}")
            if fmt is None or len(fmt) < 16:
                raise BadClip("unreadable audio: no format chunk before the data")
            tag, channels, rate, _, block, bits = struct.unpack("<HHIIHH", fmt)
            return WavHeader(tag, channels, rate, bits, n // block if block else -1, pos + 8)
        pos += 8 + n + (n & 1)
    raise BadClip("truncated WAV: no data chunk")


_CANONICAL = struct.Struct("<4sI4s4sIHHIIHH4sI")  # RIFF, size, WAVE; a 16-byte fmt chunk; the data chunk's header


def _canonical(head: bytes, size: int) -> Optional[WavHeader]:
    """`wav_header` of the 44-byte layout nearly every clip has (RIFF, a 16-byte fmt chunk, data) in one unpack;
    None for any other layout or a truncated file, which the walk reads and explains."""
    if len(head) < 44:
        return None
    riff, _, wave, fmt, n_fmt, tag, channels, rate, _, block, bits, data, n = _CANONICAL.unpack_from(head)
    if (riff, wave, fmt, n_fmt, data) != (b"RIFF", b"WAVE", b"fmt ", 16, b"data") or n > size - 44:
        return None
    return WavHeader(tag, channels, rate, bits, n // block if block else -1, 44)


def _clip_header(src, size: int, sample_rate: int) -> WavHeader:
    """`wav_header` of a file's bytes (or first bytes), or of a seekable file, refusing (BadClip) what a clip
    of a store cannot be: another encoding or rate, more than one channel, no samples."""
    if isinstance(src, bytes):
        h = _canonical(src, size) or wav_header(io.BytesIO(src), size)
    else:
        h = wav_header(src, size)
    if h.encoding not in WAV_ENCODINGS or h.frames < 0:
        raise BadClip(f"unreadable audio: WAV encoding {h.encoding} (use PCM or float)")
    if h.rate != sample_rate:
        raise BadClip(f"sample rate {h.rate} Hz, expected {sample_rate} Hz (resample the file)")
    if h.channels != 1:
        raise BadClip(f"{h.channels} channels, expected mono")
    if h.frames == 0:
        raise BadClip("no samples")
    return h


def wav_samples(src, size: int, sample_rate: int = 16000) -> int:
    """Samples of a 16-kHz mono WAV read from its header alone (nothing is decoded); BadClip with the
    reason otherwise. `src`: the file's bytes or first bytes, or a file as `wav_header` takes it (and EOFError)."""
    return _clip_header(src, size, sample_rate).frames


def decode_wav(data: bytes, sample_rate: int = 16000) -> np.ndarray:
    """Decode a 16-kHz mono WAV into float32 in [-1, 1]; raise BadClip with the reason otherwise.

    16-bit PCM (the data set's own format) is read straight from the bytes, scaled by 1/32768 exactly
    as libsndfile does; other encodings go through libsndfile."""
    h = _clip_header(data, len(data), sample_rate)
    if h.encoding == 1 and h.bits == 16:
        wave = np.frombuffer(data, "<i2", count=h.frames, offset=h.offset).astype(np.float32)
        wave *= np.float32(1 / 32768)
        return wave
    import soundfile as sf

    try:
        wave, _ = sf.read(io.BytesIO(data), dtype="float32", always_2d=True)
    except Exception as e:  # libsndfile's errors carry no useful type
        raise BadClip(f"unreadable audio: {str(e).splitlines()[0]}")
    return wave[:, 0]


def fix_length(wave: np.ndarray, n: int) -> np.ndarray:
    """Pad with zeros at the end, or trim the end, to exactly n samples."""
    if len(wave) >= n:
        return wave[:n]
    return np.pad(wave, (0, n - len(wave)))
