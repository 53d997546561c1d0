"""Sources (folder and .tar.gz) and WAV decoding, including every way a clip can be bad."""

import io
import tarfile

import numpy as np
import pytest
import soundfile as sf

from kws_hpc.errors import KwsError
from kws_hpc.data.source import BadClip, FolderSource, TarSource, decode_wav, fix_length, open_source

from conftest import SAMPLE


def wav_bytes(x, sr=16000, subtype="PCM_16"):
    buf = io.BytesIO()
    sf.write(buf, x, sr, subtype=subtype, format="WAV")
    return buf.getvalue()


def test_decode_good_clip():
    x = (np.sin(np.arange(8000) / 5) * 0.5).astype(np.float32)
    y = decode_wav(wav_bytes(x))
    assert y.dtype == np.float32 and y.shape == (8000,)
    assert np.max(np.abs(y - x)) < 1e-3


@pytest.mark.parametrize("data, reason", [
    (wav_bytes(np.zeros(16000))[:-9000], "truncated WAV"),
    (b"RIFF\x00\x00\x00\x00WAVEjunkjunkjunk", "truncated WAV"),
    (b"this is a text file, not audio" * 10, "not a WAV file"),
    (wav_bytes(np.zeros(44100), sr=44100), "sample rate 44100 Hz"),
    (wav_bytes(np.zeros((16000, 2))), "2 channels"),
    (wav_bytes(np.zeros(0)), "no samples"),
])
def test_decode_bad_clips_say_why(data, reason):
    with pytest.raises(BadClip, match=reason):
        decode_wav(data)


def test_fix_length_pads_and_trims():
    assert np.array_equal(fix_length(np.ones(3), 5), [1, 1, 1, 0, 0])
    assert np.array_equal(fix_length(np.arange(7), 4), [0, 1, 2, 3])


def test_open_source_rejects_missing_and_odd_paths(tmp_path):
    with pytest.raises(KwsError, match="does not exist"):
        open_source(tmp_path / "nope")
    (tmp_path / "x.zip").write_bytes(b"PK")
    with pytest.raises(KwsError, match="neither a folder nor"):
        open_source(tmp_path / "x.zip")


def test_tar_source_matches_folder(tiny_tree, tmp_path):
    archive = tmp_path / "sc.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(tiny_tree, arcname="speech_commands")  # a wrapping folder, stripped on read
    folder, packed = FolderSource(tiny_tree), open_source(archive)
    assert isinstance(packed, TarSource)
    assert sorted(folder.files(), key=lambda e: e.path) == sorted(packed.files(), key=lambda e: e.path)
    assert folder.dirs() == packed.dirs()
    assert folder.fingerprint() == packed.fingerprint()
    path = folder.files()[3].path
    assert dict(packed.iter_bytes([path]))[path] == (tiny_tree / path).read_bytes()


def test_corrupt_archive_is_one_clear_error(tmp_path):
    bad = tmp_path / "bad.tar.gz"
    bad.write_bytes(b"\x1f\x8b not really gzip")
    with pytest.raises(KwsError, match="cannot read archive"):
        open_source(bad).files()


@pytest.mark.skipif(not SAMPLE.is_dir(), reason="shared Speech Commands sample not present")
def test_real_sample_decodes():
    src = FolderSource(SAMPLE)
    clips = [e.path for e in src.files() if e.path.endswith(".wav") and not e.path.startswith("_")]
    assert len(clips) == 300
    lengths = [len(decode_wav(b)) for _, b in src.iter_bytes(clips)]
    assert max(lengths) == 16000 and min(lengths) < 16000  # some real clips are shorter than 1 s


def _tar(path, members):
    """A .tar.gz of (name, bytes | ('link', target) | ('symlink', target))."""
    with tarfile.open(path, "w:gz") as tar:
        for name, body in members:
            info = tarfile.TarInfo(name)
            if isinstance(body, tuple):
                info.type = tarfile.LNKTYPE if body[0] == "link" else tarfile.SYMTYPE
                info.linkname = body[1]
                tar.addfile(info)
            else:
                info.size = len(body)
                tar.addfile(info, io.BytesIO(body))
    return path


def test_tar_links_are_read_like_files(tmp_path):
    clip = wav_bytes(np.zeros(16000, np.float32))
    src = TarSource(_tar(tmp_path / "a.tar.gz", [
        ("c/yes/a_nohash_0.wav", clip), ("c/yes/b_nohash_0.wav", ("link", "c/yes/a_nohash_0.wav")),
        ("c/no/c_nohash_0.wav", ("symlink", "../yes/a_nohash_0.wav")), ("./c/no/./d_nohash_0.wav", clip)]))
    assert {e.path: e.size for e in src.files()} == {p: len(clip) for p in (
        "yes/a_nohash_0.wav", "yes/b_nohash_0.wav", "no/c_nohash_0.wav", "no/d_nohash_0.wav")}
    assert src.dirs() == ["no", "yes"]
    got = dict(src.iter_bytes([e.path for e in src.files()]))
    assert set(got) == {e.path for e in src.files()} and all(v == clip for v in got.values())


def test_tar_links_that_cannot_be_read_are_named_not_followed(tmp_path):
    clip = wav_bytes(np.zeros(16000, np.float32))
    src = TarSource(_tar(tmp_path / "a.tar.gz", [
        ("c/yes/a_nohash_0.wav", clip), ("c/yes/b_nohash_0.wav", ("symlink", "/etc/passwd")),
        ("c/no/c_nohash_0.wav", ("symlink", "../../elsewhere.wav")), ("c/no/d_nohash_0.wav", ("symlink", "gone.wav")),
        ("c/_background_noise_", ("symlink", "yes"))]))
    assert [e.path for e in src.files()] == ["yes/a_nohash_0.wav"]
    assert src.broken == {
        "yes/b_nohash_0.wav": "a link to /etc/passwd, outside the archive",
        "no/c_nohash_0.wav": "a link to ../../elsewhere.wav, outside the data set's folder in the archive",
        "no/d_nohash_0.wav": "a link to gone.wav, which the archive does not hold",
        "_background_noise_": "a link to the folder yes: links to folders are not followed inside an archive "
                              "(extract it, or archive the folder itself)"}


def test_folder_links_to_nothing_are_named(tmp_path):
    root = tmp_path / "data"
    (root / "yes").mkdir(parents=True)
    (root / "yes" / "a_nohash_0.wav").write_bytes(wav_bytes(np.zeros(16000, np.float32)))
    (root / "yes" / "b_nohash_0.wav").symlink_to(tmp_path / "missing.wav")
    (root / "_background_noise_").symlink_to(tmp_path / "no-such-folder")
    src = FolderSource(root)
    assert [e.path for e in src.files()] == ["yes/a_nohash_0.wav"]
    assert src.broken == {"_background_noise_": f"a link to {tmp_path / 'no-such-folder'}, which does not exist",
                          "yes/b_nohash_0.wav": f"a link to {tmp_path / 'missing.wav'}, which does not exist"}


@pytest.mark.parametrize("name", ["c/yes/../no/x_nohash_0.wav", "/abs/yes/x_nohash_0.wav", "../up/x_nohash_0.wav"])
def test_tar_member_escaping_its_folder_is_refused_by_name(tmp_path, name):
    clip = wav_bytes(np.zeros(16000, np.float32))
    src = TarSource(_tar(tmp_path / "a.tar.gz", [("c/yes/a_nohash_0.wav", clip), (name, clip)]))
    with pytest.raises(KwsError, match=f"member {name!r} points outside its folder"):
        src.files()


def test_folder_links_are_read_and_a_loop_is_walked_once(tmp_path):
    clip = wav_bytes(np.zeros(16000, np.float32))
    real = tmp_path / "elsewhere" / "yes"
    real.mkdir(parents=True)
    (real / "a_nohash_0.wav").write_bytes(clip)
    root = tmp_path / "data"
    (root / "no").mkdir(parents=True)
    (root / "no" / "b_nohash_0.wav").symlink_to(real / "a_nohash_0.wav")
    (root / "yes").symlink_to(real)
    (real / "loop").symlink_to(root)  # a link back up the tree
    src = FolderSource(root)
    paths = [e.path for e in src.files()]
    assert "yes/a_nohash_0.wav" in paths and "no/b_nohash_0.wav" in paths
    assert len(paths) == len(set(paths)) and all(e.size == len(clip) for e in src.files())
    assert src.dirs() == ["no", "yes"]


@pytest.mark.parametrize("subtype", ["PCM_16", "PCM_24", "FLOAT"])
def test_decoding_equals_libsndfile_and_the_header_gives_the_length(subtype):
    from kws_hpc.data.source import wav_samples

    x = np.random.default_rng(0).uniform(-1, 1, 12345).astype(np.float32)
    data = wav_bytes(x, subtype=subtype)
    want, _ = sf.read(io.BytesIO(data), dtype="float32")
    got = decode_wav(data)
    assert got.dtype == np.float32 and np.array_equal(got, want)  # bit for bit
    assert wav_samples(io.BytesIO(data), len(data)) == 12345
    full = wav_bytes(np.arange(-32768, 32768, dtype=np.int16))  # every 16-bit value
    assert np.array_equal(decode_wav(full), sf.read(io.BytesIO(full), dtype="float32")[0])


@pytest.mark.parametrize("data,reason", [
    (b"garbage" * 10, "not a WAV file"),
    (wav_bytes(np.zeros(16000))[:3000], "truncated WAV"),
    (wav_bytes(np.zeros(800), sr=8000), "sample rate 8000 Hz"),
    (wav_bytes(np.zeros((10, 2))), "2 channels"),
    (wav_bytes(np.zeros(0)), "no samples"),
])
def test_the_header_probe_gives_decode_wavs_reasons(data, reason):
    from kws_hpc.data.source import wav_samples

    for read in (lambda: decode_wav(data), lambda: wav_samples(io.BytesIO(data), len(data))):
        with pytest.raises(BadClip, match=reason):
            read()


def test_the_44_byte_header_read_in_one_unpack_equals_the_walk():
    import struct

    from kws_hpc.data.wav import _canonical, wav_header

    pcm = wav_bytes(np.zeros(100))
    assert len(pcm) == 44 + 200 and _canonical(pcm, len(pcm)) == wav_header(io.BytesIO(pcm), len(pcm))
    others = wav_bytes(np.zeros(800), sr=8000), wav_bytes(np.zeros((10, 2))), wav_bytes(np.zeros(50), subtype="FLOAT")
    for data in others:
        fast = _canonical(data, len(data))  # the layout is the 44-byte one or not: either way no other answer
        assert fast is None or fast == wav_header(io.BytesIO(data), len(data))
    listed = pcm[:36] + b"LIST" + struct.pack("<I", 4) + b"INFO" + pcm[36:]  # a chunk before the audio
    assert _canonical(listed, len(listed)) is None and wav_header(io.BytesIO(listed), len(listed)).frames == 100
    assert _canonical(pcm[:100], 100) is None  # the data chunk promises more than the file holds: the walk says so
    with pytest.raises(BadClip, match="truncated"):
        decode_wav(pcm[:100])
    assert _canonical(b"RIFF" + bytes(60), 64) is None
