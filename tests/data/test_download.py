"""Download, resume, verification and safe extraction, against a real HTTP server on 127.0.0.1."""

from __future__ import annotations

import hashlib
import io
import socket
import tarfile
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import soundfile as sf

from kws_hpc.data import download as dl
from kws_hpc.errors import KwsError

NAME = "speech_commands_v0.02.tar.gz"


def _speech_commands_tree(root: Path) -> None:
    rng = np.random.default_rng(0)
    clips = (("yes", "0a7c2a8d_nohash_0"), ("no", "0b09edd3_nohash_0"), ("no", "0b09edd3_nohash_1"))
    for word, clip in clips:
        (root / word).mkdir(exist_ok=True)
        sf.write(root / word / f"{clip}.wav", rng.uniform(-0.5, 0.5, 16000), 16000, subtype="PCM_16")
    (root / "_background_noise_").mkdir()
    sf.write(root / "_background_noise_" / "white_noise.wav", rng.uniform(-0.5, 0.5, 32000), 16000,
             subtype="PCM_16")
    (root / "validation_list.txt").write_text("no/0b09edd3_nohash_1.wav\n")
    (root / "testing_list.txt").write_text("yes/0a7c2a8d_nohash_0.wav\n")


@pytest.fixture(scope="module")
def payload(tmp_path_factory) -> bytes:
    root = tmp_path_factory.mktemp("tree")
    _speech_commands_tree(root)
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        tar.add(root, arcname=".")  # the release archives list their members as ./word/clip.wav
    return buffer.getvalue()


class _Handler(BaseHTTPRequestHandler):
    """Serves state.payload at /NAME: mode "range" honours Range, "norange" ignores it, "cut" stops early."""

    def do_GET(self):
        state = self.server.state
        state.requests.append((self.path, self.headers.get("Range")))
        if self.path != f"/{NAME}":
            self.send_error(404)
            return
        body, asked = state.payload, self.headers.get("Range")
        start = int(asked.removeprefix("bytes=").split("-")[0]) if asked and state.mode == "range" else 0
        self.send_response(206 if start else 200)
        if start:
            self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
        self.send_header("Content-Length", str(len(body) - start))
        self.end_headers()
        self.wfile.write(body[start:len(body) // 2] if state.mode == "cut" else body[start:])

    def log_message(self, *args):
        pass


@pytest.fixture
def server(payload):
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    httpd.state = SimpleNamespace(payload=payload, mode="range", requests=[])
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    httpd.state.url = f"http://127.0.0.1:{httpd.server_address[1]}/{NAME}"
    yield httpd.state
    httpd.shutdown()
    httpd.server_close()


def _fetch(state, dest, **kw):
    body = state.payload
    options = dict(url=state.url, size=len(body), sha256=hashlib.sha256(body).hexdigest(), progress=False)
    return dl.download("v0.02", dest, **{**options, **kw})


def test_full_download_verifies_and_extracts(server, tmp_path, capsys):
    folder = _fetch(server, tmp_path, progress=True)
    assert folder == tmp_path / "speech_commands_v0.02"
    assert (tmp_path / NAME).read_bytes() == server.payload
    assert not (tmp_path / f"{NAME}.part").exists()
    assert server.requests == [(f"/{NAME}", None)]
    assert sorted(p.name for p in folder.iterdir()) == [
        ".complete", "_background_noise_", "no", "testing_list.txt", "validation_list.txt", "yes"]
    audio, rate = sf.read(folder / "no" / "0b09edd3_nohash_1.wav")
    assert rate == 16000 and audio.shape == (16000,)
    assert not (tmp_path / "speech_commands_v0.02.extracting").exists()
    assert NAME in capsys.readouterr().err  # the progress bar goes to stderr


def test_second_call_makes_no_request(server, tmp_path, capsys):
    folder = _fetch(server, tmp_path)
    server.requests.clear()
    assert _fetch(server, tmp_path) == folder
    assert _fetch(server, tmp_path, extract=False) == tmp_path / NAME
    assert server.requests == []
    assert "already" in capsys.readouterr().err


def test_cut_connection_keeps_part_and_resumes_with_range(server, tmp_path):
    server.mode = "cut"
    with pytest.raises(KwsError, match="re-running resumes"):
        _fetch(server, tmp_path)
    half = len(server.payload) // 2
    part = tmp_path / f"{NAME}.part"
    assert part.stat().st_size == half and not (tmp_path / NAME).exists()

    server.mode = "range"
    _fetch(server, tmp_path, extract=False)
    assert server.requests[-1] == (f"/{NAME}", f"bytes={half}-")
    assert (tmp_path / NAME).read_bytes() == server.payload
    assert not part.exists()


def test_server_without_range_support_restarts_from_zero(server, tmp_path):
    (tmp_path / f"{NAME}.part").write_bytes(b"not the start of the archive")
    server.mode = "norange"
    _fetch(server, tmp_path, extract=False)
    assert server.requests == [(f"/{NAME}", "bytes=28-")]
    assert (tmp_path / NAME).read_bytes() == server.payload


def test_wrong_checksum_deletes_download(server, tmp_path):
    with pytest.raises(KwsError, match="sha256.*expected 0000.*re-run"):
        _fetch(server, tmp_path, sha256="0" * 64)
    assert list(tmp_path.iterdir()) == []


def test_wrong_size_deletes_download(server, tmp_path):
    size = len(server.payload)
    with pytest.raises(KwsError, match=f"{size:,} bytes, expected {size + 1:,}"):
        _fetch(server, tmp_path, size=size + 1)
    assert list(tmp_path.iterdir()) == []


def test_http_404_names_the_url(server, tmp_path):
    missing = server.url.replace(NAME, "gone.tar.gz")
    with pytest.raises(KwsError, match=f"{missing}.*HTTP 404"):
        _fetch(server, tmp_path, url=missing)


def test_unreachable_server_names_the_url(tmp_path):
    with socket.socket() as probe:  # a port nobody listens on once closed
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    url = f"http://127.0.0.1:{port}/{NAME}"
    with pytest.raises(KwsError, match=f"download of {url} failed.*re-run"):
        dl.download("v0.02", tmp_path, url=url, progress=False)


def test_unknown_checksum_is_recorded_and_checked_later(server, tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(dl.ARCHIVES, "v0.02", dl.Archive(url=server.url, size=len(server.payload)))
    archive = dl.download("v0.02", tmp_path, extract=False, progress=False)
    digest = hashlib.sha256(server.payload).hexdigest()
    assert (tmp_path / f"{NAME}.sha256").read_text() == f"{digest}  {NAME}\n"
    assert digest in capsys.readouterr().err

    corrupt = bytearray(archive.read_bytes())
    corrupt[100] ^= 0xFF
    archive.write_bytes(bytes(corrupt))
    with pytest.raises(KwsError, match="sha256.*delete it"):
        dl.download("v0.02", tmp_path, extract=False, progress=False)


@pytest.mark.parametrize("evil", ["../escaped.txt", "/etc/escaped.txt", "yes/../../escaped.txt"])
def test_path_traversal_member_is_refused(server, tmp_path, evil):
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name in ("yes/ok.txt", evil):
            info = tarfile.TarInfo(name)
            info.size = 2
            tar.addfile(info, io.BytesIO(b"hi"))
    server.payload = buffer.getvalue()
    dest = tmp_path / "data"
    with pytest.raises(KwsError, match="refusing"):
        _fetch(server, dest)
    assert not (tmp_path / "escaped.txt").exists()
    assert sorted(p.name for p in dest.iterdir()) == [NAME]  # neither the folder nor its staging remains


def test_interrupted_extraction_is_redone(server, tmp_path):
    _fetch(server, tmp_path, extract=False)
    staging = tmp_path / "speech_commands_v0.02.extracting"
    (staging / "yes").mkdir(parents=True)
    (staging / "yes" / "half_written.wav").write_bytes(b"RIFF")
    folder = _fetch(server, tmp_path)
    assert (folder / ".complete").is_file() and not staging.exists()
    assert not (folder / "yes" / "half_written.wav").exists()
    assert len(list((folder / "yes").iterdir())) == 1


def test_unknown_version_and_foreign_folder(tmp_path):
    with pytest.raises(KwsError, match="v0.01, v0.02"):
        dl.download("v9", tmp_path)
    archive = tmp_path / "a.tar.gz"
    archive.write_bytes(b"x")
    (tmp_path / "speech_commands_v0.02").mkdir()
    with pytest.raises(KwsError, match="move it away"):
        dl._extract(archive, tmp_path / "speech_commands_v0.02")


def test_verify_archive(tmp_path):
    path = tmp_path / "a.bin"
    path.write_bytes(b"abc")
    dl.verify_archive(path, 3, hashlib.sha256(b"abc").hexdigest())
    dl.verify_archive(path, None, None, md5=hashlib.md5(b"abc").hexdigest())
    with pytest.raises(KwsError, match="3 bytes, expected 4"):
        dl.verify_archive(path, 4, None)
    with pytest.raises(KwsError, match="md5"):
        dl.verify_archive(path, 3, None, md5="0" * 32)
