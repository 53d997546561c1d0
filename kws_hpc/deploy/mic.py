"""Microphone input for the live pipeline (sounddevice / PortAudio, imported only here and only when used).

The device is opened at the feature rate (16 kHz mono) when it can do that; otherwise at its own default
rate, and python-soxr's `ResampleStream` converts block by block with the same numbers as resampling the
whole recording at once. Without PortAudio or without an input device the user gets one clear KwsError.
"""

from __future__ import annotations

import queue
from dataclasses import dataclass
from typing import Callable, Optional

from kws_hpc.errors import KwsError

NO_MIC_HINT = "use --wav FILE to run the same pipeline on a recording, or --list-devices to see devices"


def _sounddevice():
    try:
        import sounddevice as sd
    except (ImportError, OSError) as e:  # OSError: the module is there but libportaudio is not
        raise KwsError(f"microphone input needs PortAudio and the sounddevice package ({e}); install "
                       "libportaudio2 (Debian/Ubuntu) or portaudio (Homebrew), or " + NO_MIC_HINT) from e
    return sd


def list_devices() -> str:
    """PortAudio's device table, with the default input marked; a clear line when there is none."""
    sd = _sounddevice()
    try:
        devices = sd.query_devices()
    except Exception as e:  # PortAudioError when PortAudio cannot enumerate at all
        raise KwsError(f"PortAudio cannot list audio devices ({e})") from e
    inputs = [i for i, d in enumerate(devices) if d.get("max_input_channels", 0) > 0]
    text = str(devices)
    return text + ("\n" if text else "") + (f"{len(inputs)} input device(s): {inputs}" if inputs
                                            else "no input device (no microphone)")


def _input_device(sd, device) -> tuple[Optional[int | str], dict]:
    try:
        info = sd.query_devices(device, kind="input")
    except Exception as e:  # PortAudioError / ValueError: no such device or no default input
        which = f"input device {device!r}" if device is not None else "a microphone (no default input device)"
        raise KwsError(f"cannot open {which}: {e}; {NO_MIC_HINT}") from e
    if info.get("max_input_channels", 0) < 1:
        raise KwsError(f"device {info.get('name', device)!r} has no input channels; {NO_MIC_HINT}")
    return device, info


def open_rate(sd, device, rate: int, info: dict) -> int:
    """`rate` when the device takes it, else the device's default rate (then the blocks are resampled)."""
    try:
        sd.check_input_settings(device=device, channels=1, samplerate=rate, dtype="float32")
        return rate
    except Exception:
        return int(info.get("default_samplerate") or rate)


@dataclass
class MicInput:
    """An input device that PortAudio found, and the rate it will be opened at."""

    sd: object
    device: Optional[int | str]
    info: dict
    rate: int


def _resampler(rate_in: int, rate_out: int):
    """python-soxr's block-wise resampler (None when the rates agree): the blocks it returns join into
    exactly what resampling the whole signal gives."""
    if rate_in == rate_out:
        return None
    import soxr

    return soxr.ResampleStream(rate_in, rate_out, 1, dtype="float32")


def open_input(device=None, rate: int = 16000) -> MicInput:
    """Find the microphone (KwsError with what to do when there is none) and the rate to open it at."""
    sd = _sounddevice()
    device, info = _input_device(sd, device)
    return MicInput(sd, device, info, open_rate(sd, device, rate, info))


def listen(pipeline, mic: MicInput, seconds: Optional[float] = None,
           on_detection: Callable = print, log: Callable[[str], None] = print) -> list:
    """Run the pipeline on the microphone until Ctrl-C (or `seconds`); returns the detections."""
    sd, want, rate = mic.sd, pipeline.fc.sample_rate, mic.rate
    resample = _resampler(rate, want)
    blocks: queue.Queue = queue.Queue()
    overflows = [0]

    def callback(indata, frames, time_info, status):  # PortAudio's thread: copy and hand over only
        if status:
            overflows[0] += 1
        blocks.put(indata[:, 0].copy())

    log(f"listening on {mic.info.get('name', 'default input')!r} at {rate} Hz"
        + (f" (resampled to {want} Hz)" if resample else "") + "; Ctrl-C stops")
    dets = []
    try:
        with sd.InputStream(device=mic.device, channels=1, samplerate=rate, dtype="float32",
                            blocksize=int(round(pipeline.hop * rate / want)), callback=callback):
            while seconds is None or pipeline.seconds < seconds:
                x = blocks.get(timeout=5.0)
                for d in pipeline.push(resample.resample_chunk(x) if resample else x):
                    on_detection(d)
                    dets.append(d)
    except queue.Empty:
        raise KwsError("the microphone delivered no audio for 5 s; check the device "
                       "(--list-devices)") from None
    except KeyboardInterrupt:
        pass
    except sd.PortAudioError as e:
        raise KwsError(f"microphone error: {e}; {NO_MIC_HINT}") from e
    for d in pipeline.finish():
        on_detection(d)
        dets.append(d)
    if overflows[0]:
        log(f"warning: {overflows[0]} input overflow(s): the detector fell behind the microphone")
    return dets
