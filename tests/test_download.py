"""Downloads against a local HTTP server on 127.0.0.1 (random port, in a thread); nothing leaves loopback."""

from __future__ import annotations

import hashlib
import http.server
import io
import json
import socket
import threading
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest

from cfgrl.data.download import (
    ChecksumError,
    DownloadError,
    download,
    download_exorl,
    download_ogbench,
    exorl_url,
    main_download,
    ogbench_urls,
)

PAYLOAD = np.random.default_rng(0).integers(0, 256, size=300_000, dtype=np.uint8).tobytes()
MAX_REQUESTS = 20  # the server refuses to serve more than this per test: a runaway retry loop fails fast


class _Server:
    """Serves `files` {path: bytes}. `drop_first` {path: n}: the first n requests of a path send the full
    Content-Length, half the body, then close the connection. Records what it saw."""

    def __init__(self, files: dict[str, bytes], drop_first: dict[str, int] | None = None, on_request=None):
        self.files = files
        self.drop_first = dict(drop_first or {})
        self.on_request = on_request
        self.requests: list[str] = []
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802
                server.requests.append(self.path)
                if len(server.requests) > MAX_REQUESTS:
                    self.send_error(429)
                    return
                if server.on_request:
                    server.on_request(self.path)
                body = server.files.get(self.path)
                if body is None:
                    self.send_error(404)
                    return
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if server.drop_first.get(self.path, 0) > 0:
                    server.drop_first[self.path] -= 1
                    self.wfile.write(body[: len(body) // 2])
                    self.wfile.flush()
                    self.close_connection = True
                    self.connection.shutdown(socket.SHUT_RDWR)
                    return
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self) -> _Server:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(5)


@pytest.fixture(autouse=True)
def _no_proxy(monkeypatch):
    """Requests go straight to the loopback server, whatever proxies the environment sets."""
    for var in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(var, raising=False)


def _leftovers(folder: Path) -> list[str]:
    """Temporary files a download may have left (there must be none)."""
    return sorted(p.name for p in folder.iterdir() if p.suffix in (".part", ".tmp"))


def test_success_records_checksum_and_later_downloads_check_it(tmp_path):
    sha = hashlib.sha256(PAYLOAD).hexdigest()
    with _Server({"/d.npz": PAYLOAD}) as srv:
        dest = download([srv.url + "/d.npz"], tmp_path / "d.npz", timeout=5, retries=1)
        assert dest.read_bytes() == PAYLOAD
        registry = json.loads((tmp_path / "checksums.json").read_text())
        assert registry["d.npz"]["sha256"] == sha and registry["d.npz"]["size"] == len(PAYLOAD)
        # an existing verified file is not fetched again
        download([srv.url + "/d.npz"], dest, timeout=5)
        assert len(srv.requests) == 1
        # the command-line wrapper: exit status 0
        assert main_download(["url", srv.url + "/d.npz", "--out", str(tmp_path / "cli" / "d.npz")]) == 0
        assert (tmp_path / "cli" / "d.npz").read_bytes() == PAYLOAD
        srv.requests.clear()
        # the served file changes: the recorded checksum catches it
        dest.unlink()
        srv.files["/d.npz"] = PAYLOAD[::-1]
        with pytest.raises(ChecksumError) as err:
            download([srv.url + "/d.npz"], dest, timeout=5, retries=0)
    msg = str(err.value)
    assert "\n" not in msg and srv.url + "/d.npz" in msg and sha in msg
    assert hashlib.sha256(PAYLOAD[::-1]).hexdigest() in msg
    assert not dest.exists() and _leftovers(tmp_path) == []


def test_checksum_mismatch_leaves_nothing(tmp_path):
    wrong = "0" * 64
    with _Server({"/d.npz": PAYLOAD}) as srv:
        with pytest.raises(ChecksumError) as err:
            download([srv.url + "/d.npz"], tmp_path / "d.npz", sha256=wrong, timeout=5, retries=2)
        assert len(srv.requests) == 1, "a complete file with the wrong hash is not retried"
    msg = str(err.value)
    assert "\n" not in msg and srv.url + "/d.npz" in msg and wrong in msg
    assert hashlib.sha256(PAYLOAD).hexdigest() in msg
    assert list(tmp_path.iterdir()) == []  # no file, no temp file, no registry entry


def test_dropped_connection_is_retried_and_never_exposes_a_partial_file(tmp_path):
    dest = tmp_path / "d.npz"
    seen_dest: list[bool] = []
    with _Server({"/d.npz": PAYLOAD}, drop_first={"/d.npz": 1},
                 on_request=lambda path: seen_dest.append(dest.exists())) as srv:
        download([srv.url + "/d.npz"], dest, sha256=hashlib.sha256(PAYLOAD).hexdigest(), timeout=5, retries=2,
                 backoff=0.01)
        assert len(srv.requests) == 2
    assert seen_dest == [False, False], "nothing may appear at dest before the verified file"
    assert dest.read_bytes() == PAYLOAD
    assert _leftovers(tmp_path) == []


def test_dropped_connection_on_every_try_fails_cleanly(tmp_path):
    with _Server({"/d.npz": PAYLOAD}, drop_first={"/d.npz": 99}) as srv:
        with pytest.raises(DownloadError) as err:
            download([srv.url + "/d.npz"], tmp_path / "d.npz", timeout=5, retries=2, backoff=0.01)
        assert len(srv.requests) == 3
    assert "\n" not in str(err.value) and "dropped" in str(err.value)
    assert list(tmp_path.iterdir()) == []


def test_mirrors_are_tried_in_order(tmp_path):
    with _Server({"/b/x-v0.npz": PAYLOAD, "/b/x-v0-val.npz": PAYLOAD[:1000]}) as srv:
        mirrors = [srv.url + "/a", srv.url + "/b"]  # the first mirror has nothing (404)
        paths = download_ogbench("x-v0", tmp_path, mirrors=mirrors, timeout=5, retries=0)
        assert [p.name for p in paths] == ["x-v0.npz", "x-v0-val.npz"]
        assert srv.requests == ["/a/x-v0.npz", "/b/x-v0.npz", "/a/x-v0-val.npz", "/b/x-v0-val.npz"]
    assert paths[1].read_bytes() == PAYLOAD[:1000]


def test_offline_fails_fast_with_one_line_error(tmp_path):
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"http://127.0.0.1:{port}/d.npz"
    start = time.monotonic()
    with pytest.raises(DownloadError) as err:
        download([url], tmp_path / "d.npz", timeout=5, retries=3)
    assert time.monotonic() - start < 3.0
    msg = str(err.value)
    assert "\n" not in msg and url in msg and "refused" in msg
    assert list(tmp_path.iterdir()) == []
    # the command-line wrapper exits non-zero with the same one-line error
    start = time.monotonic()
    code = main_download(["url", url, "--out", str(tmp_path / "d.npz"), "--retries", "2"])
    assert code != 0 and time.monotonic() - start < 3.0


def test_ogbench_urls_default_host_and_mirrors():
    (urls, fn), (val_urls, val_fn) = ogbench_urls("antmaze-large-navigate-v0")
    assert fn == "antmaze-large-navigate-v0.npz" and val_fn == "antmaze-large-navigate-v0-val.npz"
    assert urls == ["https://rail.eecs.berkeley.edu/datasets/ogbench/antmaze-large-navigate-v0.npz"]
    (urls, _), _ = ogbench_urls("a-v0", mirrors=["http://m1/x/", "http://m2"])
    assert urls == ["http://m1/x/a-v0.npz", "http://m2/a-v0.npz"]


def test_exorl_urls():
    assert exorl_url("walker") == ["https://dl.fbaipublicfiles.com/exorl/walker/rnd.zip"]
    assert exorl_url("jaco", mirrors=["http://m/x/"]) == ["http://m/x/jaco/rnd.zip"]  # mirrors replace the host


def test_exorl_download_unpacks_to_buffer(tmp_path):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for i in range(3):
            ep = io.BytesIO()
            np.savez(ep, observation=np.zeros((3, 2)))
            zf.writestr(f"buffer/{i}_{i}_2.npz", ep.getvalue())
    with _Server({"/walker/rnd.zip": buf.getvalue()}) as srv:
        out = download_exorl("walker", tmp_path, mirrors=[srv.url], timeout=5, retries=0)
        assert srv.requests == ["/walker/rnd.zip"]
    assert out == tmp_path / "walker" / "rnd"
    assert sorted(p.name for p in (out / "buffer").iterdir()) == ["0_0_2.npz", "1_1_2.npz", "2_2_2.npz"]
    assert not (tmp_path / "walker" / "rnd.zip").exists()
    assert [p.name for p in (tmp_path / "walker").iterdir() if p.suffix in (".unzip", ".part")] == []
    assert download_exorl("walker", tmp_path, mirrors=["http://127.0.0.1:9/"]) == out  # present: no network
