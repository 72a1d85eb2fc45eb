"""Dataset downloads that never leave a partial or corrupt file behind.

`download(urls, dest)` tries mirror URLs in order. Each attempt streams into a temporary file in `dest`'s
folder while hashing it, checks that the full Content-Length arrived and that the SHA-256 matches, and only
then renames the file into place (atomic on one filesystem). The first successful download of a file records
its SHA-256 (and size and URL) in a small JSON registry beside the data (`<dir>/checksums.json` by default);
later downloads of the same file name are checked against it. Failures give one-line errors:
- checksum mismatch: names the URL and both hashes; the temporary file is deleted;
- a connection that drops mid-transfer (fewer bytes than Content-Length) or times out is retried from the
  start (after a short back-off); nothing is ever visible at `dest` until a complete, verified file is there;
- offline (connection refused, DNS failure, unreachable network) fails fast: a short connect timeout, no
  retries for that URL.
Proxies set in the environment (https_proxy / http_proxy / no_proxy) are honoured.

Helpers name the public sources: `ogbench_urls` (OGBench's host, or a mirror) and `exorl_url` /
`download_exorl` (ExORL's zip, unpacked to `<root>/<domain>/rnd/buffer/*.npz`). `main_download(argv)` is the
command-line entry point; it returns a process exit code.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import hashlib
import http.client
import json
import os
import shutil
import socket
import ssl
import sys
import tempfile
import time
import urllib.parse
import urllib.request
import zipfile
from collections.abc import Iterator, Sequence
from pathlib import Path

from cfgrl.io import atomic_write_json

OGBENCH_MIRRORS: tuple[str, ...] = ("https://rail.eecs.berkeley.edu/datasets/ogbench",)
EXORL_MIRRORS: tuple[str, ...] = ("https://dl.fbaipublicfiles.com/exorl",)
EXORL_DOMAINS: tuple[str, ...] = ("walker", "quadruped", "cheetah", "jaco")
CHECKSUM_FILE = "checksums.json"
CHUNK = 1 << 20
_MAX_REDIRECTS = 5


class DownloadError(RuntimeError):
    """A download failed; the message is one line naming the URL(s) and the cause."""


class ChecksumError(DownloadError):
    """A completely received file did not have the expected SHA-256."""


class _Retryable(Exception):
    """A transient failure worth another attempt (dropped connection, timeout, HTTP 5xx)."""


class _Unreachable(Exception):
    """The host cannot be reached at all (refused, DNS failure, no route): not worth retrying."""


class _Permanent(Exception):
    """The server answered but will not give the file (HTTP 4xx, bad URL)."""


# --------------------------------------------------------------------------------------------------------------
# Checksum registry


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    """An exclusive advisory lock on `.<name>.lock` beside `path`, so parallel jobs keep each other's entries."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_name(f".{path.name}.lock"), "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def read_checksums(store: Path) -> dict[str, dict]:
    """The registry {file name: {'sha256', 'size', 'url'}}; empty if the file does not exist."""
    try:
        with open(store) as f:
            data = json.load(f)
    except FileNotFoundError:
        return {}
    except (OSError, json.JSONDecodeError) as err:
        raise DownloadError(f"{store}: unreadable checksum registry ({err})") from err
    if not isinstance(data, dict):
        raise DownloadError(f"{store}: checksum registry must be a JSON object")
    return data


def record_checksum(store: Path, name: str, sha256: str, size: int, url: str) -> None:
    """Add or replace one registry entry, atomically and under a lock."""
    with _locked(store):
        data = read_checksums(store)
        data[name] = {"sha256": sha256, "size": size, "url": url}
        atomic_write_json(store, data)


def sha256_file(path: str | Path) -> str:
    """Hex SHA-256 of a file, read in 1 MiB chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK):
            h.update(chunk)
    return h.hexdigest()


# --------------------------------------------------------------------------------------------------------------
# HTTP


def _proxy_for(scheme: str, host: str) -> str | None:
    """The proxy URL the environment sets for this scheme and host (https_proxy, http_proxy, no_proxy), if any."""
    if host in ("localhost", "::1") or host.startswith("127.") or urllib.request.proxy_bypass(host):
        return None
    return urllib.request.getproxies().get(scheme)


def _connect(parts: urllib.parse.SplitResult, connect_timeout: float,
             read_timeout: float) -> tuple[http.client.HTTPConnection, str]:
    """An open connection for a URL (through the environment's proxy if one is set) and the request target."""
    host = parts.hostname or ""
    port = parts.port or (443 if parts.scheme == "https" else 80)
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    proxy = _proxy_for(parts.scheme, host)
    where = f"{host}:{port}"
    if proxy:
        p = urllib.parse.urlsplit(proxy if "://" in proxy else f"http://{proxy}")
        where = f"proxy {p.hostname}:{p.port or 80} for {host}:{port}"
        if parts.scheme == "https":
            conn: http.client.HTTPConnection = http.client.HTTPSConnection(
                p.hostname, p.port or 80, timeout=connect_timeout, context=ssl.create_default_context())
            conn.set_tunnel(host, port)
        else:
            conn = http.client.HTTPConnection(p.hostname, p.port or 80, timeout=connect_timeout)
            target = urllib.parse.urlunsplit(parts)
    elif parts.scheme == "https":
        conn = http.client.HTTPSConnection(host, port, timeout=connect_timeout, context=ssl.create_default_context())
    else:
        conn = http.client.HTTPConnection(host, port, timeout=connect_timeout)
    try:
        conn.connect()
    except socket.gaierror as err:
        raise _Unreachable(f"cannot resolve {where} (offline?): {err.strerror or err}") from err
    except ConnectionRefusedError as err:
        raise _Unreachable(f"connection refused by {where} (offline?)") from err
    except TimeoutError as err:
        raise _Unreachable(f"no connection to {where} within {connect_timeout:g} s (offline?)") from err
    except ssl.SSLCertVerificationError as err:
        raise _Permanent(f"TLS certificate of {host} not trusted ({err.verify_message})") from err
    except ssl.SSLError as err:
        raise _Retryable(f"TLS handshake with {host} failed ({err})") from err
    except OSError as err:
        raise _Unreachable(f"cannot connect to {where} ({err.strerror or err}; offline?)") from err
    finally:
        if conn.sock is None:
            conn.close()
    conn.sock.settimeout(read_timeout)
    return conn, target


def _open(url: str, connect_timeout: float, read_timeout: float) -> tuple[http.client.HTTPConnection,
                                                                           http.client.HTTPResponse, str]:
    """GET url following redirects; returns (connection, 200 response, final url)."""
    for _ in range(_MAX_REDIRECTS + 1):
        parts = urllib.parse.urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise _Permanent(f"unsupported URL {url!r}")
        conn, target = _connect(parts, connect_timeout, read_timeout)
        try:
            conn.request("GET", target, headers={"User-Agent": "cfgrl-download", "Accept-Encoding": "identity"})
            resp = conn.getresponse()
        except (OSError, http.client.HTTPException) as err:
            conn.close()
            raise _Retryable(f"no response ({type(err).__name__}: {err})") from err
        if resp.status in (301, 302, 303, 307, 308) and resp.getheader("Location"):
            url = urllib.parse.urljoin(url, resp.getheader("Location"))
            conn.close()
            continue
        if resp.status == 200:
            return conn, resp, url
        conn.close()
        if resp.status >= 500 or resp.status == 429:
            raise _Retryable(f"HTTP {resp.status} {resp.reason}")
        raise _Permanent(f"HTTP {resp.status} {resp.reason}")
    raise _Permanent(f"more than {_MAX_REDIRECTS} redirects")


def _fetch_to(url: str, tmp: Path, connect_timeout: float, read_timeout: float) -> tuple[str, int]:
    """Stream url into tmp (truncating it); returns (sha256, size). Raises _Retryable on a short transfer."""
    conn, resp, _ = _open(url, connect_timeout, read_timeout)
    expected = resp.getheader("Content-Length")
    expected_len = int(expected) if expected and expected.isdigit() else None
    h = hashlib.sha256()
    size = 0
    try:
        with open(tmp, "wb") as f:
            while True:
                try:
                    chunk = resp.read(CHUNK)
                except http.client.IncompleteRead as err:
                    raise _Retryable(f"connection dropped after {size + len(err.partial)} of {expected_len} bytes") \
                        from err
                except (OSError, http.client.HTTPException) as err:
                    raise _Retryable(f"connection dropped after {size} bytes ({type(err).__name__}: {err})") from err
                if not chunk:
                    break
                f.write(chunk)
                h.update(chunk)
                size += len(chunk)
            f.flush()
            os.fsync(f.fileno())
    finally:
        conn.close()
    if expected_len is not None and size != expected_len:
        raise _Retryable(f"connection dropped after {size} of {expected_len} bytes")
    return h.hexdigest(), size


def download(
    url_candidates: Sequence[str],
    dest: str | Path,
    sha256: str | None = None,
    checksum_store: str | Path | None = None,
    timeout: float = 60.0,
    retries: int = 3,
    connect_timeout: float = 5.0,
    backoff: float = 0.5,
) -> Path:
    """Download the first URL that works to `dest`, verified; returns `dest`.

    url_candidates: mirrors, tried in order (each up to 1 + `retries` times for transient failures).
    sha256: expected hex digest; if None, the registry's entry for dest.name is used, and if there is none,
        the first download's digest is recorded there.
    checksum_store: registry path; default `<dest folder>/checksums.json`.
    timeout: read timeout per socket operation (s); connect_timeout: per connection attempt (s).
    An existing `dest` whose digest matches is kept without downloading (one with no known digest is recorded;
    one that does not match is replaced). Raises ChecksumError or DownloadError (one-line messages).
    """
    dest = Path(dest)
    store = Path(checksum_store) if checksum_store is not None else dest.parent / CHECKSUM_FILE
    if not url_candidates:
        raise DownloadError(f"{dest.name}: no URL to download from")
    known = read_checksums(store).get(dest.name, {}).get("sha256")
    expected = (sha256 or known or "").lower() or None
    if sha256 and known and sha256.lower() != known.lower():
        raise ChecksumError(f"{dest.name}: requested sha256 {sha256} differs from the one recorded in {store} "
                            f"({known}); delete the registry entry if the file really changed")
    if dest.exists():
        digest = sha256_file(dest)
        if expected is None:
            record_checksum(store, dest.name, digest, dest.stat().st_size, "local")
            return dest
        if digest == expected:
            return dest
        print(f"warning: {dest} has sha256 {digest}, expected {expected}: downloading it again", file=sys.stderr)

    dest.parent.mkdir(parents=True, exist_ok=True)
    errors: list[str] = []
    mismatch: str | None = None
    for url in url_candidates:
        for attempt in range(retries + 1):
            fd, tmp_name = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".part", dir=dest.parent)
            os.close(fd)
            tmp = Path(tmp_name)
            try:
                digest, size = _fetch_to(url, tmp, connect_timeout, timeout)
                if expected is not None and digest != expected:
                    mismatch = mismatch or (f"checksum mismatch for {url}: expected sha256 {expected}, "
                                            f"got {digest} ({size} bytes); file discarded")
                    break
                os.replace(tmp, dest)
                if known is None:
                    record_checksum(store, dest.name, digest, size, url)
                return dest
            except _Retryable as err:
                errors.append(f"{url}: {err}")
                if attempt < retries:
                    time.sleep(backoff * (attempt + 1))
            except (_Unreachable, _Permanent) as err:
                errors.append(f"{url}: {err}")
                break
            finally:
                tmp.unlink(missing_ok=True)
    if mismatch is not None:
        raise ChecksumError(mismatch)
    raise DownloadError(f"download of {dest.name} failed: " + "; ".join(errors[-4:]))


# --------------------------------------------------------------------------------------------------------------
# Sources


def ogbench_urls(name: str, mirrors: Sequence[str] | None = None) -> list[tuple[list[str], str]]:
    """[(mirror urls, file name)] for an OGBench dataset's `{name}.npz` and `{name}-val.npz`.

    name: the dataset file name without '.npz', e.g. 'antmaze-large-navigate-v0' (not a singletask/oraclerep
    variant: those read the base dataset's files). mirrors: base URLs tried in order (default OGBench's host).
    """
    mirrors = list(mirrors) if mirrors else list(OGBENCH_MIRRORS)
    files = [f"{name}.npz", f"{name}-val.npz"]
    return [([f"{m.rstrip('/')}/{fn}" for m in mirrors], fn) for fn in files]


def download_ogbench(name: str, data_dir: str | Path, mirrors: Sequence[str] | None = None, **kwargs) -> list[Path]:
    """Download an OGBench dataset's train and val files into data_dir; returns their paths."""
    data_dir = Path(data_dir).expanduser()
    return [download(urls, data_dir / fn, **kwargs) for urls, fn in ogbench_urls(name, mirrors)]


def exorl_url(domain: str, method: str = "rnd", mirrors: Sequence[str] | None = None) -> list[str]:
    """ExORL zip URLs for a domain's exploration data (default RND), one per mirror, in order.

    mirrors: base URLs laid out like ExORL's host, `{mirror}/{domain}/{method}.zip` (default: ExORL's host only).
    """
    return [f"{m.rstrip('/')}/{domain}/{method}.zip" for m in (mirrors or EXORL_MIRRORS)]


def extract_exorl_zip(zip_path: str | Path, out_dir: str | Path) -> Path:
    """Unpack an ExORL zip so that the episodes lie in `out_dir/buffer/*.npz`; returns out_dir.

    Unpacks into a temporary folder beside out_dir and renames it into place, so out_dir is either absent or
    complete. The zip's own layout may be `buffer/*.npz` or episodes at any depth; all `*.npz` files end up
    directly in `buffer/`.
    """
    zip_path, out_dir = Path(zip_path), Path(out_dir)
    if (out_dir / "buffer").is_dir():
        return out_dir
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", suffix=".unzip", dir=out_dir.parent))
    try:
        try:
            with zipfile.ZipFile(zip_path) as zf:
                bad = zf.testzip()
                if bad is not None:
                    raise DownloadError(f"{zip_path}: corrupt member {bad!r}")
                for member in zf.infolist():
                    target = (tmp / member.filename).resolve()
                    if not str(target).startswith(str(tmp.resolve())):
                        raise DownloadError(f"{zip_path}: member {member.filename!r} escapes the folder")
                zf.extractall(tmp)
        except zipfile.BadZipFile as err:
            raise DownloadError(f"{zip_path}: not a zip file ({err})") from err
        episodes = sorted(p for p in tmp.rglob("*.npz") if p.is_file())
        if not episodes:
            raise DownloadError(f"{zip_path}: no episode .npz files inside")
        staged = tmp / "_staged" / "buffer"
        staged.mkdir(parents=True)
        for p in episodes:
            os.replace(p, staged / p.name)
        if out_dir.exists():  # e.g. a cache folder made earlier: move only the complete buffer in
            os.replace(staged, out_dir / "buffer")
        else:
            os.replace(staged.parent, out_dir)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out_dir


def download_exorl(domain: str, root: str | Path, method: str = "rnd", mirrors: Sequence[str] | None = None,
                   keep_zip: bool = False, **kwargs) -> Path:
    """Download and unpack ExORL data: returns `<root>/<domain>/<method>` holding `buffer/*.npz`."""
    root = Path(root).expanduser()
    out = root / domain / method
    if (out / "buffer").is_dir():
        return out
    zip_path = download(exorl_url(domain, method, mirrors), root / domain / f"{method}.zip", **kwargs)
    extract_exorl_zip(zip_path, out)
    if not keep_zip:
        zip_path.unlink(missing_ok=True)
    return out


# --------------------------------------------------------------------------------------------------------------
# Command line


def main_download(argv: Sequence[str] | None = None) -> int:
    """`download {ogbench NAME | exorl DOMAIN | url URL...} ...`; returns 0 on success, 1 on failure."""
    parser = argparse.ArgumentParser(prog="cfgrl download", description="download datasets, verified")
    sub = parser.add_subparsers(dest="source", required=True)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--timeout", type=float, default=60.0, help="read timeout per socket operation (s)")
    common.add_argument("--connect-timeout", type=float, default=5.0, help="connect timeout (s)")
    common.add_argument("--retries", type=int, default=3, help="retries per mirror for transient failures")
    p = sub.add_parser("ogbench", parents=[common], help="an OGBench dataset (train + val files)")
    p.add_argument("name", help="dataset name, e.g. antmaze-large-navigate-v0")
    p.add_argument("--dir", type=Path, default=Path("~/.ogbench/data"))
    p.add_argument("--mirror", action="append", default=None, help="base URL, repeatable, tried in order")
    p = sub.add_parser("exorl", parents=[common], help="an ExORL domain's RND data")
    p.add_argument("domain", choices=EXORL_DOMAINS)
    p.add_argument("--dir", type=Path, default=Path("data/exorl"))
    p.add_argument("--method", default="rnd")
    p.add_argument("--mirror", action="append", default=None)
    p = sub.add_parser("url", parents=[common], help="any file")
    p.add_argument("urls", nargs="+", help="mirrors of one file, tried in order")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--sha256", default=None)
    args = parser.parse_args(argv)
    kw = dict(timeout=args.timeout, connect_timeout=args.connect_timeout, retries=args.retries)
    try:
        if args.source == "ogbench":
            paths = download_ogbench(args.name, args.dir, args.mirror, **kw)
            print("downloaded " + ", ".join(str(p) for p in paths))
        elif args.source == "exorl":
            out = download_exorl(args.domain, args.dir, args.method, args.mirror, **kw)
            print(f"downloaded {out / 'buffer'} ({len(list((out / 'buffer').glob('*.npz')))} episodes)")
        else:
            print(f"downloaded {download(args.urls, args.out, sha256=args.sha256, **kw)}")
    except DownloadError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    return 0
