"""A build cache shared across machines: `cache=http://HOST:PORT/PREFIX`.

The local SCons CacheDir stays the first level; an HTTP server in the Bazel
remote-cache layout is the second (README.md, "Shared cache"):

    GET/PUT {url}/cas/<sha256>   the bytes of one built file, addressed by content
    GET/PUT {url}/ac/<key>       key -> which content: a REAPI ActionResult
                                 (protobuf) naming one output file and its digest

`key` is sha256(FORMAT, SCons's cache signature of the file), so any server
that speaks that layout serves it: nginx with WebDAV PUT, bazel-remote (which
checks that /ac/ entries are ActionResults and /cas/ uploads match their
hash), the servers that ccache's remote storage uses in its bazel layout.

Every downloaded object is checked against its sha256 and size before
anything uses it; a mismatch is discarded, reported once and rebuilt. A
server that cannot be reached costs one bounded timeout, one warning line,
and the rest of the build goes on without it. Extra request headers (a
token) come from SYCLFORGE_CACHE_HEADERS and are never printed.

Also here: the toolchain's identity (family, version, content hashes of its
binaries, the target's image list), which the SCons glue adds to every
built file's signature, so that no key can hand back an artifact of another
compiler.

Imports no SCons.
"""
import hashlib
import http.client
import json
import os
import socket
import ssl
import sys
import tempfile
import threading
import urllib.parse

from syclforge.errors import SyclforgeError

FORMAT = "syclforge-cache-v1"
CONNECT_TIMEOUT = 2.0     # seconds to connect (a closed port answers at once)
READ_TIMEOUT = 10.0       # seconds without a byte from the server
TIMEOUT_ENV = "SYCLFORGE_CACHE_TIMEOUT"
HEADERS_ENV = "SYCLFORGE_CACHE_HEADERS"
CHUNK = 1 << 20
_SCHEMES = {"http": http.client.HTTPConnection, "https": http.client.HTTPSConnection}
_HINT = ("give cache=DIR (a local CacheDir) or cache=http://HOST:PORT/PREFIX "
         "(an HTTP cache behind a local one; README.md, \"Shared cache\")")


# --------------------------------------------------------------------------
# cache=

class CacheConfig:
    """What cache= asks for: a local directory, and perhaps a server URL."""

    def __init__(self, local, url=None):
        self.local, self.url = local, url

    def __repr__(self):
        return f"CacheConfig(local={self.local!r}, url={self.url!r})"


def default_local_dir(environ):
    """The first level under an HTTP cache: $XDG_CACHE_HOME/syclforge/cachedir
    (default ~/.cache/syclforge/cachedir)."""
    base = environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "syclforge", "cachedir")


def parse_cache(value, environ=None):
    """CacheConfig for the cache= variable, or None when it is empty.

    Raises SyclforgeError naming the variable and what to give instead."""
    environ = os.environ if environ is None else environ
    value = (value or "").strip()
    if not value:
        return None
    if "://" not in value:
        if value.lower().startswith(("http:", "https:")):
            raise SyclforgeError(f"cache={value}: not a URL (no '//' after the scheme); {_HINT}")
        return CacheConfig(os.path.expanduser(value))
    try:
        parts = urllib.parse.urlsplit(value)
        port = parts.port
    except ValueError as e:
        raise SyclforgeError(f"cache={_redact(value)}: malformed URL ({e}); {_HINT}") from None
    scheme = parts.scheme.lower()
    if scheme not in _SCHEMES:
        raise SyclforgeError(f"cache={_redact(value)}: unsupported scheme '{parts.scheme}' "
                             f"(http or https); {_HINT}")
    if not parts.hostname:
        raise SyclforgeError(f"cache={_redact(value)}: the URL names no host; {_HINT}")
    if parts.username is not None or parts.password is not None:
        raise SyclforgeError(f"cache={_redact(value)}: credentials do not belong in the URL "
                             f"(it is printed in warnings); put them in {HEADERS_ENV}, "
                             f"e.g. '{HEADERS_ENV}=Authorization: Bearer <token>'")
    if parts.query or parts.fragment:
        raise SyclforgeError(f"cache={_redact(value)}: the URL takes no ?query or #fragment; {_HINT}")
    host = parts.hostname if ":" not in parts.hostname else f"[{parts.hostname}]"
    netloc = host + (f":{port}" if port is not None else "")
    path = parts.path.rstrip("/")
    return CacheConfig(default_local_dir(environ), f"{scheme}://{netloc}{path}")


def _redact(url):
    """url without the user:password part (never echo a credential)."""
    head, sep, rest = url.partition("://")
    if not sep:
        return url
    auth, at, after = rest.partition("@")
    if at and "/" not in auth:
        return f"{head}://***@{after}"
    return url


def parse_headers(text):
    """[(name, value)] from SYCLFORGE_CACHE_HEADERS: 'Name: value', one per
    line. Errors name the line, never its value."""
    headers = []
    for n, line in enumerate((text or "").splitlines(), 1):
        if not line.strip():
            continue
        name, colon, value = line.partition(":")
        name, value = name.strip(), value.strip()
        if not colon or not name or any(c in name for c in " \t()<>@,;\\\"/[]?={}") or not value:
            raise SyclforgeError(f"{HEADERS_ENV}: line {n} is not 'Name: value' (e.g. "
                                 f"'Authorization: Bearer <token>'); its text is not shown")
        if any(c in value for c in "\r\n\0"):
            raise SyclforgeError(f"{HEADERS_ENV}: line {n} holds a control character")
        headers.append((name, value))
    return headers


def timeouts(environ):
    """(connect, read) timeouts in seconds; SYCLFORGE_CACHE_TIMEOUT=S sets
    the read timeout (and caps the connect timeout) to S."""
    text = environ.get(TIMEOUT_ENV, "").strip()
    if not text:
        return CONNECT_TIMEOUT, READ_TIMEOUT
    try:
        value = float(text)
        if not 0 < value <= 3600:
            raise ValueError
    except ValueError:
        raise SyclforgeError(f"{TIMEOUT_ENV}={text}: give a number of seconds, e.g. 10") from None
    return min(CONNECT_TIMEOUT, value), value


def container_settings(config, *, upload, headers_text, environ, work):
    """For `scons docker=1 cache=...`: (arguments for syclforge.inside,
    container environment, network mode) so that the build inside the
    container uses the same HTTP cache, its local level in the work volume.
    The container gets the host's network (a cache on the runner's
    127.0.0.1 is reachable) and the headers in its environment (seen by
    `docker inspect`, i.e. by whoever runs the engine)."""
    if not config.url:
        raise SyclforgeError(f"cache={config.local}: docker=1 builds inside containers, which do not "
                             f"see this machine's folders; give cache=http(s)://HOST:PORT/PREFIX "
                             f"(README.md, \"Shared cache\") or leave cache= out")
    args = [f"--scons-arg=cache={config.url}", f"--scons-arg=cache_upload={1 if upload else 0}"]
    env = {"XDG_CACHE_HOME": f"{work}/cache"}
    if headers_text:
        env[HEADERS_ENV] = headers_text
    if environ.get(TIMEOUT_ENV):
        env[TIMEOUT_ENV] = environ[TIMEOUT_ENV]
    return args, env, "host"


# --------------------------------------------------------------------------
# Keys and entries

def action_key(signature):
    """The /ac/ key of a file whose SCons cache signature is `signature`."""
    return hashlib.sha256(f"{FORMAT}\0{signature}".encode()).hexdigest()


def _varint(n):
    out = bytearray()
    while True:
        b, n = n & 0x7F, n >> 7
        out.append(b | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _field(number, data):     # a length-delimited protobuf field
    return _varint(number << 3 | 2) + _varint(len(data)) + data


def encode_action_result(path, sha256, size, executable=False):
    """A REAPI ActionResult with one OutputFile {path, digest, is_executable}."""
    digest = _field(1, sha256.encode()) + _varint(2 << 3) + _varint(size)
    output = _field(1, path.encode()) + _field(2, digest)
    if executable:
        output += _varint(4 << 3) + _varint(1)
    return _field(2, output)


def _fields(data):
    """(number, wire type, value) of a protobuf message; ValueError if malformed."""
    i, n = 0, len(data)

    def varint():
        nonlocal i
        shift = value = 0
        while True:
            if i >= n or shift > 63:
                raise ValueError("truncated varint")
            b = data[i]
            i += 1
            value |= (b & 0x7F) << shift
            shift += 7
            if not b & 0x80:
                return value

    while i < n:
        key = varint()
        number, wire = key >> 3, key & 7
        if wire == 0:
            yield number, wire, varint()
        elif wire == 2:
            length = varint()
            if i + length > n:
                raise ValueError("truncated field")
            yield number, wire, data[i:i + length]
            i += length
        elif wire in (1, 5):
            i += 8 if wire == 1 else 4
            if i > n:
                raise ValueError("truncated field")
        else:
            raise ValueError(f"wire type {wire}")


def decode_action_result(data):
    """(sha256, size, executable) of the one output file an ActionResult
    names; ValueError when it is not such an entry. Unknown fields (a
    server's execution metadata) are skipped."""
    outputs = [v for num, wire, v in _fields(data) if num == 2 and wire == 2]
    if len(outputs) != 1:
        raise ValueError(f"{len(outputs)} output files, expected 1")
    digest, executable = None, False
    for num, wire, v in _fields(outputs[0]):
        if num == 2 and wire == 2:
            digest = v
        elif num == 4 and wire == 0:
            executable = bool(v)
    if digest is None:
        raise ValueError("no digest")
    sha, size = None, None
    for num, wire, v in _fields(digest):
        if num == 1 and wire == 2:
            sha = v.decode("ascii", "replace")
        elif num == 2 and wire == 0:
            size = v
    if sha is None or len(sha) != 64 or any(c not in "0123456789abcdef" for c in sha):
        raise ValueError("digest is not a sha256")
    return sha, size or 0, executable


def sha256_file(path):
    h, size = hashlib.sha256(), 0
    with open(path, "rb") as f:
        while True:
            block = f.read(CHUNK)
            if not block:
                return h.hexdigest(), size
            h.update(block)
            size += len(block)


# --------------------------------------------------------------------------
# The toolchain's identity

class DigestMemo:
    """sha256 of files, remembered by (path, size, mtime, inode) in a JSON
    file, so that a 140 MB compiler library is read once, not every build."""

    def __init__(self, path):
        self.path, self.changed = path, False
        try:
            with open(path, encoding="utf-8") as f:
                self.entries = json.load(f)
        except (OSError, ValueError):
            self.entries = {}

    def digest(self, path):
        real = os.path.realpath(path)
        st = os.stat(real)
        stamp = [st.st_size, st.st_mtime_ns, st.st_ino]
        hit = self.entries.get(real)
        if hit and hit[0] == stamp:
            return hit[1]
        value = sha256_file(real)[0]
        self.entries[real] = [stamp, value]
        self.changed = True
        return value

    def save(self):
        if not self.changed:
            return
        try:
            os.makedirs(os.path.dirname(self.path), exist_ok=True)
            tmp = f"{self.path}.{os.getpid()}.tmp"
            with open(tmp, "w", encoding="utf-8") as f:
                json.dump(self.entries, f, sort_keys=True)
            os.replace(tmp, self.path)
            self.changed = False
        except OSError:
            pass      # only a memo: the next build hashes again


def _binaries(det):
    """{role: path} of the files that are the toolchain: a prefix family's
    found files (compiler libraries, headers), an executable family's
    driver and the tools it calls (opencl-aot, ocloc, ptxas, ...)."""
    found = {}
    files = det.info.get("files") or {}
    for name, path in sorted(files.items()):
        found[name] = path
    if det.path and os.path.isfile(det.path):
        found["exe:" + os.path.basename(det.path)] = det.path
    for name, path in sorted((det.info.get("tools") or {}).items()):
        if isinstance(path, str):
            found["tool:" + name] = path
    bin_dir = det.info.get("bin_dir")
    for caps in (det.family.data.get("capabilities") or {}).values():
        for req in (caps or {}).get("requires") or ():
            path = os.path.join(bin_dir, req["bin_file"]) if bin_dir and "bin_file" in req else None
            if path and os.path.isfile(path):
                found["tool:" + req["bin_file"]] = path
    return found


def toolchain_identity(det, target, images, memo):
    """One deterministic string (JSON) that changes when anything that makes
    a target's binaries changes outside the sources and command lines: the
    toolchain family, its version, the content of its binaries (not their
    paths: two machines with the same compiler at different places share),
    the host compiler and its version, the target and its image list."""
    def digests(paths):
        out = {}
        for role, path in sorted(paths.items()):
            try:
                out[role] = memo.digest(path)
            except OSError:
                out[role] = "missing"
        return out

    host = None
    if det.info.get("host_cxx"):
        host_path = det.info["host_cxx"]
        host = {"family": det.info.get("host_family"), "version": det.info.get("host_version"),
                "binary": digests({"cxx": host_path}).get("cxx")}
    kinds = {i.id: i.kind for i in target.images}
    return json.dumps({
        "format": FORMAT,
        "toolchain": {"family": det.name, "kind": det.family.data.get("kind"), "version": det.version,
                      "binaries": digests(_binaries(det))},
        "host": host,
        "target": {"name": target.name, "vendor": target.vendor, "device": target.device,
                   "images": [[i, kinds.get(i, "?")] for i in images]},
    }, sort_keys=True)


# --------------------------------------------------------------------------
# The HTTP level

class _TooLong(Exception):
    """A downloaded object is longer than its entry says."""


class _Unreachable(Exception):
    """The server did not answer in time or the connection failed."""


def _why(exc):
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    if isinstance(exc, (socket.timeout, TimeoutError)):
        return "timed out"
    if isinstance(exc, socket.gaierror):
        return "unknown host"
    if isinstance(exc, ssl.SSLError):
        return f"TLS: {exc.reason or exc.__class__.__name__}"
    if isinstance(exc, http.client.IncompleteRead):
        return "connection closed mid-answer"
    if isinstance(exc, http.client.RemoteDisconnected):
        return "connection closed without an answer"
    if isinstance(exc, http.client.HTTPException):
        return f"bad answer ({exc.__class__.__name__})"
    text = getattr(exc, "strerror", None) or str(exc) or exc.__class__.__name__
    return text.lower()


class HttpCache:
    """The second level: an HTTP server in the Bazel remote-cache layout.

    Thread-safe (SCons retrieves from worker threads). Every failure is
    reported once, by `report(line)`, and turns the remote level (or, for
    a refused upload, uploading) off for the rest of the build."""

    def __init__(self, url, *, headers=(), upload=True, connect_timeout=CONNECT_TIMEOUT,
                 read_timeout=READ_TIMEOUT, report=None):
        parts = urllib.parse.urlsplit(url)
        self.url, self.upload = url, upload
        self._conn_class = _SCHEMES[parts.scheme]
        self._host, self._port = parts.hostname, parts.port
        self._prefix = parts.path.rstrip("/")
        self._headers = dict(headers)
        self._connect_timeout, self._read_timeout = connect_timeout, read_timeout
        self._report = report or (lambda line: print(line, file=sys.stderr, flush=True))
        self._lock = threading.Lock()
        self._local = threading.local()
        self._reported = set()
        self._bad = set()            # digests refused this build: upload them again
        self.disabled = None         # why the server is off for this build
        self.upload_disabled = None  # why uploads are off
        self.stats = {"hits": 0, "misses": 0, "refused": 0, "uploaded": 0, "entries": 0,
                      "answered": 0}

    # -- reporting -------------------------------------------------------
    def _once(self, key, line):
        with self._lock:
            if key in self._reported:
                return
            self._reported.add(key)
        self._report(f"syclforge: warning: remote cache {self.url}: {line}")

    def _count(self, name, n=1):
        with self._lock:
            self.stats[name] += n

    def _off(self, why):
        with self._lock:
            if self.disabled:
                return
            self.disabled = why
        self._once("off", f"{why}; building without it for the rest of this build")

    def summary(self):
        """One line for the end of the build, or None if the server never
        answered."""
        s = self.stats
        if not s["answered"]:
            return None
        text = (f"syclforge: remote cache {self.url}: {s['hits']} hit(s), {s['misses']} miss(es), "
                f"{s['uploaded']} object(s) and {s['entries']} key(s) uploaded")
        if s["refused"]:
            text += f", {s['refused']} object(s) refused (hash mismatch) and rebuilt"
        return text

    # -- transport -------------------------------------------------------
    def _connection(self, fresh=False):
        conn = getattr(self._local, "conn", None)
        if conn is not None and not fresh:
            return conn, True
        if conn is not None:
            conn.close()
        conn = self._conn_class(self._host, self._port, timeout=self._connect_timeout)
        conn.connect()
        conn.sock.settimeout(self._read_timeout)
        self._local.conn = conn
        return conn, False

    def _drop(self):
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None

    def _request(self, method, path, body=None, headers=None, sink=None):
        """(status, reason, body bytes or None). With sink, a 200 body is
        written to sink(chunk) instead. Raises _Unreachable."""
        all_headers = dict(self._headers)
        all_headers.update(headers or {})
        for attempt in (0, 1):
            try:
                conn, reused = self._connection(fresh=attempt > 0)
            except (OSError, http.client.HTTPException) as e:
                raise _Unreachable(_why(e)) from None
            try:
                if hasattr(body, "seek"):
                    body.seek(0)
                conn.request(method, self._prefix + path, body=body, headers=all_headers)
                resp = conn.getresponse()
            except (ConnectionResetError, BrokenPipeError, http.client.RemoteDisconnected) as e:
                self._drop()
                if reused and attempt == 0:    # a kept-alive connection the server closed
                    continue
                raise _Unreachable(_why(e)) from None
            except (OSError, http.client.HTTPException) as e:
                self._drop()
                raise _Unreachable(_why(e)) from None
            try:
                if method == "HEAD":
                    data = resp.getheader("Content-Length")
                    resp.read()
                elif sink is not None and resp.status == 200:
                    data = None
                    while True:
                        block = resp.read(CHUNK)
                        if not block:
                            break
                        sink(block)
                else:
                    data = resp.read()
                if resp.will_close:
                    self._drop()
            except (OSError, http.client.HTTPException) as e:
                self._drop()
                raise _Unreachable(_why(e)) from None
            self._count("answered")
            return resp.status, resp.reason, data
        raise AssertionError("unreachable")

    # -- reading ---------------------------------------------------------
    def fetch(self, key, dest, label):
        """Download the file stored under key, check it, write it to dest
        (atomically, mode 0755/0644 from the entry). True on a hit."""
        if self.disabled:
            return False
        try:
            status, reason, data = self._request("GET", f"/ac/{key}")
            if status == 404:
                self._count("misses")
                return False
            if status != 200:
                self._refused_read(status, reason)
                return False
            try:
                sha, size, executable = decode_action_result(data)
            except ValueError as e:
                self._once(f"ac:{key}", f"the entry for {label} is not an ActionResult ({e}); ignored, rebuilding")
                self._count("misses")
                return False
            os.makedirs(os.path.dirname(dest), exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=os.path.dirname(dest), prefix=".remote-")
            h, got = hashlib.sha256(), [0]
            try:
                with os.fdopen(fd, "wb") as f:
                    def sink(block):
                        h.update(block)
                        got[0] += len(block)
                        if got[0] > size:        # more than the entry says: stop reading
                            raise _TooLong()
                        f.write(block)
                    try:
                        status, reason, _ = self._request("GET", f"/cas/{sha}", sink=sink)
                    except _TooLong:
                        self._drop()
                        status, reason = 200, "OK"
                if status == 404:
                    self._count("misses")
                    return False
                if status != 200:
                    self._refused_read(status, reason)
                    return False
                if h.hexdigest() != sha or got[0] != size:
                    with self._lock:
                        self._bad.add(sha)
                    self._count("refused")
                    self._once(f"bad:{sha}", f"object {sha[:16]}... for {label} does not match its hash "
                                             f"({got[0]} bytes, expected {size}): discarded, rebuilding")
                    return False
                os.chmod(tmp, 0o755 if executable else 0o644)
                os.replace(tmp, dest)
                tmp = None
                self._count("hits")
                return True
            finally:
                if tmp is not None and os.path.exists(tmp):
                    os.unlink(tmp)
        except _Unreachable as e:
            self._off(f"unreachable ({e})")
            return False

    def _refused_read(self, status, reason):
        if status in (401, 403):
            self._off(f"refused reading (HTTP {status} {reason}): check {HEADERS_ENV}")
        else:
            self._off(f"answered HTTP {status} {reason}")

    # -- writing ---------------------------------------------------------
    def store(self, key, path, name, executable=False):
        """Upload a built file: its bytes to /cas/<sha256> (unless the
        server has them), then key -> digest to /ac/<key>."""
        if not self.upload or self.disabled or self.upload_disabled:
            return
        try:
            sha, size = sha256_file(path)
        except OSError:
            return
        try:
            with self._lock:
                bad = sha in self._bad
            if not bad:
                status, _, length = self._request("HEAD", f"/cas/{sha}")
                have = status == 200 and length is not None and length.isdigit() and int(length) == size
            else:
                have = False
            if not have:
                with open(path, "rb") as f:
                    status, reason, _ = self._request(
                        "PUT", f"/cas/{sha}", body=f,
                        headers={"Content-Length": str(size), "Content-Type": "application/octet-stream"})
                if not self._stored(status, reason):
                    return
                self._count("uploaded")
            entry = encode_action_result(name, sha, size, executable)
            status, reason, _ = self._request(
                "PUT", f"/ac/{key}", body=entry,
                headers={"Content-Length": str(len(entry)), "Content-Type": "application/octet-stream"})
            if self._stored(status, reason):
                self._count("entries")
        except _Unreachable as e:
            self._off(f"unreachable ({e})")

    def _stored(self, status, reason):
        if 200 <= status < 300:
            return True
        with self._lock:
            if self.upload_disabled:
                return False
            self.upload_disabled = f"HTTP {status}"
        hint = (f": uploads need credentials in {HEADERS_ENV}, or give cache_upload=0"
                if status in (401, 403) else "")
        self._once("upload", f"refused an upload (HTTP {status} {reason}){hint}; "
                             f"not uploading for the rest of this build")
        return False
