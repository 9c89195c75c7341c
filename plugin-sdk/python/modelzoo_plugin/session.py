"""The plugin session: handshake, heartbeats, request dispatch, downloads, shutdown.

Threads (as in the C++ SDK, plugin-sdk/src/plugin.cc): the thread that calls run() owns the
DEALER socket and is the only one that talks to the daemon; it sends the heartbeats, so a
wedged main loop is noticed by the daemon. configure() runs on a thread of its own, requests
on a pool of 4 worker threads, each download on a thread of its own. Workers hand their
finished frames to the main loop over an inproc PUSH/PULL pipe (ZeroMQ sockets are not
thread-safe).
"""

import collections
import itertools
import os
import signal
import socket
import sys
import threading
import time
import traceback

import zmq

from . import codec
from .errors import Error
from .extension import Extension, HookResult, parse_hook_request
from .names import check_file_name, check_model_name, check_version
from .registry import ChunkSink, DownloadRequest, Registry

__all__ = ["run", "log", "EXIT_OK", "EXIT_CONFIG_REJECTED", "EXIT_NO_ENDPOINT", "EXIT_REJECTED",
           "EXIT_DAEMON_SILENT"]

EXIT_OK = 0               # the daemon said goodbye, or SIGTERM/SIGINT
EXIT_CONFIG_REJECTED = 1  # configure() raised
def read_key_file(path):
    """The (public, secret) Z85 keys of a modelzoo key pair file (docs/security.md)."""
    if not path:
        raise ValueError("MODELZOO_KEY_FILE (this plugin's key pair) is not set")
    try:
        st = os.stat(path)
        with open(path, encoding="ascii") as f:
            lines = f.read(4096).splitlines()
    except (OSError, UnicodeDecodeError) as e:
        raise ValueError("%s: %s" % (path, e))
    keys = {}
    for line in lines:
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        name, _, value = line.partition("=")
        keys[name.strip()] = value.strip()
    public, secret = keys.get("public-key", ""), keys.get("secret-key", "")
    if len(public) != 40 or len(secret) != 40:
        raise ValueError("%s: needs public-key and secret-key, 40 Z85 characters each" % path)
    if st.st_mode & 0o077:
        raise ValueError("%s: holds a secret key but is readable by others; chmod 600 it" % path)
    return public, secret


EXIT_NO_ENDPOINT = 2      # MODELZOO_ENDPOINT is not set: not started by a daemon
EXIT_REJECTED = 3         # hello rejected, no welcome within 10 s, or no common protocol version
EXIT_DAEMON_SILENT = 4    # nothing heard from the daemon for heartbeat_ms x heartbeat_liveness

POOL_THREADS = 4
MAX_DOWNLOADS = 16
DEFAULT_CREDIT = 8
DEFAULT_CHUNK = 1 << 20
MIN_CHUNK = 4096
MAX_CREDIT_GRANT = 1024
SHUTDOWN_GRACE_S = 2.0
REGISTRY_CAPABILITIES = ["metadata", "exists", "list", "download"]

_session_ids = itertools.count(1)

LOG_FD = 2  # where log() writes: stderr, which the daemon reads line by line


def log(level, message):
    """Writes a log line to stderr, which the daemon logs tagged with the plugin.
    `level` is one of "debug", "info", "warn", "error"."""
    text = "".join("%s %s\n" % (level, line) for line in str(message).splitlines() or [""])
    data = text.encode("utf-8", "replace")
    try:
        while data:  # one write per message, so lines from several threads never interleave
            n = os.write(LOG_FD, data)
            data = data[n:]
    except OSError:
        pass


def _log_exception(what):
    log("debug", "%s:\n%s" % (what, traceback.format_exc().rstrip()))


# ---------------------------------------------------------------------------------------------
# Parameters of requests


def _require_string(body, key):
    v = body.get(key)
    if not isinstance(v, str):
        raise Error("bad_request", "request lacks string parameter '%s'" % key)
    return v


def _model_name(body):
    name = _require_string(body, "name")
    why = check_model_name(name)
    if why:
        raise Error("bad_request", why)
    return name


def _optional_version(body):
    v = body.get("version")
    if v is None:
        return ""
    if not isinstance(v, str):
        raise Error("bad_request", "parameter 'version' is not a string")
    if v:
        why = check_version(v)
        if why:
            raise Error("bad_request", why)
    return v


def _optional_uint(body, key, default, lo, hi):
    v = body.get(key)
    if v is None:
        return default
    if type(v) is not int or v < 0:
        raise Error("bad_request", "parameter '%s' is not a non-negative integer" % key)
    if not lo <= v <= hi:
        raise Error("bad_request", "parameter '%s' is out of range [%d, %d]" % (key, lo, hi))
    return v


def _error_message(mid, exc):
    if isinstance(exc, Error):
        code, text = exc.code, exc.message if isinstance(exc.message, str) else str(exc.message)
    else:
        code, text = "internal", str(exc) or type(exc).__name__
    if len(text) > 16384:
        text = text[:16384] + "..."
    return {"type": "error", "id": mid, "error": {"code": code, "message": text}, "body": {}}


def _as_dict(value, what):
    if isinstance(value, dict):
        return value
    to_dict = getattr(value, "to_dict", None)
    if callable(to_dict):
        return to_dict()
    raise TypeError("%s returned %s, not a dict or an object with to_dict()" % (what, type(value).__name__))


# ---------------------------------------------------------------------------------------------
# Downloads


class _Download:
    """Flow-control state of one download, shared by its thread and the main loop."""

    def __init__(self, credit):
        self.cond = threading.Condition()
        self.credit = credit
        self.cancelled = False


class _Sink(ChunkSink):
    def __init__(self, session, push, mid, state, chunk_size, idle_s, offset):
        self._session, self._push, self._id, self._state = session, push, mid, state
        self.chunk_size = chunk_size
        self._idle = idle_s
        self._offset = offset
        self.sent = 0

    def _take_credit(self):
        st = self._state
        with st.cond:
            ok = st.cond.wait_for(lambda: st.credit > 0 or st.cancelled or self._session.stopping, self._idle)
            if st.cancelled:
                raise Error("unavailable", "download cancelled by the daemon")
            if self._session.stopping:
                raise Error("unavailable", "plugin is stopping")
            if not ok:
                raise Error("timeout", "no credit from the daemon within the stall timeout")
            st.credit -= 1

    def write(self, data):
        immutable = isinstance(data, bytes)
        view = memoryview(data)
        if view.ndim != 1 or view.itemsize != 1:
            view = view.cast("B")
        pos, size = 0, len(view)
        while pos < size:
            self._take_credit()
            n = min(size - pos, self.chunk_size)
            # Slices of immutable bytes go out without a copy; anything else is copied, so the
            # caller may reuse its buffer as soon as write() returns.
            piece = view[pos:pos + n] if immutable else bytes(view[pos:pos + n])
            env = codec.encode_envelope({"type": "chunk", "id": self._id,
                                         "body": {"offset": self._offset + self.sent}})
            self._push.send_multipart([env, piece], copy=False)
            pos += n
            self.sent += n


# ---------------------------------------------------------------------------------------------
# The session


class _Session:
    def __init__(self, plugin, kind, name, version, hello_fields, inline_requests, env, hello_timeout,
                 exit_on_stuck):
        self.plugin = plugin
        self.kind = kind
        self.name, self.version = name, version
        self.hello_fields = hello_fields
        self.inline_requests = inline_requests
        self.env = os.environ if env is None else env
        self.hello_timeout = hello_timeout
        self.exit_on_stuck = exit_on_stuck
        self.out_endpoint = "inproc://modelzoo-sdk-out-%d" % next(_session_ids)

        self.exit_code = EXIT_OK
        self.stopping = False
        self.signalled = 0
        self.heartbeat_s = 1.0
        self.liveness = 3
        self.config = {}

        self.mu = threading.Condition()  # guards the fields below
        self.configured = False
        self.config_error = None
        self.tasks = collections.deque()
        self.downloads = {}
        self.running = 0                 # threads inside configure(), a handler or a download
        self.threads = []

        self.ctx = None
        self.dealer = None
        self.pull = None
        self.dropped = 0

    # -- sockets -------------------------------------------------------------------------------

    def _push_socket(self):
        push = self.ctx.socket(zmq.PUSH)
        push.setsockopt(zmq.LINGER, 0)
        push.connect(self.out_endpoint)
        return push

    def _send(self, message):
        """Sends a message from the main loop; never blocks (drops when the daemon cannot take it)."""
        self._send_frames(codec.encode(message))

    def _send_frames(self, frames):
        try:
            self.dealer.send_multipart(frames, flags=zmq.NOBLOCK, copy=False)
        except zmq.Again:
            self.dropped += 1
            if self.dropped in (1, 10, 100) or self.dropped % 1000 == 0:
                log("warn", "the daemon takes no messages (%d dropped so far)" % self.dropped)
        except zmq.ZMQError as e:
            log("warn", "cannot send to the daemon: %s" % e)

    # -- handshake -----------------------------------------------------------------------------

    def _handshake(self, poller):
        hello = {
            "protocol": [codec.PROTOCOL_VERSION],
            "plugin_id": self.env.get("MODELZOO_PLUGIN_ID", ""),
            "token": self.env.get("MODELZOO_TOKEN", ""),
            "name": self.name,
            "version": self.version,
            "pid": os.getpid(),
        }
        hello.update(self.hello_fields)
        self._send({"type": "hello", "body": hello})
        if self.env is os.environ:
            # The token is this spawn's identity: programs the plugin starts must not inherit it.
            os.environ.pop("MODELZOO_TOKEN", None)
        deadline = time.monotonic() + self.hello_timeout
        while time.monotonic() < deadline and not self.signalled:
            events = dict(poller.poll(100))
            self._drain_wakeup(events)
            if self.dealer not in events:
                continue
            try:
                msg = codec.decode(self.dealer.recv_multipart(zmq.NOBLOCK))
            except zmq.Again:
                continue
            except codec.ProtocolError as e:
                log("error", "invalid message from the daemon during handshake: %s" % e)
                continue
            if msg["type"] == "reject":
                log("error", "daemon rejected the hello: %s: %s" % (msg["error"]["code"], msg["error"]["message"]))
                self.exit_code = EXIT_REJECTED
                return False
            if msg["type"] != "welcome":
                continue
            b = msg["body"]
            protocol = b.get("protocol")
            if type(protocol) is not int or protocol != codec.PROTOCOL_VERSION:
                log("error", "daemon chose a protocol version this SDK does not speak")
                self.exit_code = EXIT_REJECTED
                return False
            hb = b.get("heartbeat_ms")
            hb = hb if type(hb) is int and hb >= 0 else 1000
            lv = b.get("heartbeat_liveness")
            lv = lv if type(lv) is int and lv >= 0 else 3
            self.heartbeat_s = min(max(hb, 10), 600000) / 1000.0
            self.liveness = min(max(lv, 2), 100)
            self.config = b["config"] if isinstance(b.get("config"), dict) else {}
            return True
        log("error", "stopped by signal during handshake" if self.signalled else
            "no welcome from the daemon within %g s" % self.hello_timeout)
        self.exit_code = EXIT_OK if self.signalled else EXIT_REJECTED
        return False

    # -- configure -----------------------------------------------------------------------------

    def _configure(self):
        error = None
        try:
            self.plugin.configure(self.config)
        except BaseException as e:  # noqa: B902 -- whatever it is, the plugin cannot work
            _log_exception("configure() raised")
            error = (e.message if isinstance(e, Error) else str(e)) or "configure() failed"
        with self.mu:
            if error is None:
                self.configured = True
            else:
                self.config_error = error
            self.running -= 1
            self.mu.notify_all()
        if error is not None:
            push = self._push_socket()  # wake the main loop: it ends the plugin
            try:
                push.send(b"", zmq.NOBLOCK)
            except zmq.ZMQError:
                pass
            push.close()

    def _wait_configured(self):
        with self.mu:
            self.mu.wait_for(lambda: self.configured or self.stopping)
            return self.configured and not self.stopping

    # -- requests ------------------------------------------------------------------------------

    def _handle(self, req, deadline):
        b, method, mid = req["body"], req["method"], req["id"]
        if self.kind == "extension":
            if method != "hook":
                raise Error("bad_request", "unknown method '%s'" % method)
            result = self.plugin.hook(parse_hook_request(b, deadline))
            if result is None:
                raise TypeError("hook() returned None, not a HookResult")
            return {"type": "reply", "id": mid, "body": _as_dict(result, "hook()")}
        if method == "metadata":
            meta = self.plugin.metadata(_model_name(b), _optional_version(b))
            return {"type": "reply", "id": mid, "body": _as_dict(meta, "metadata()")}
        if method == "exists":
            return {"type": "reply", "id": mid,
                    "body": {"exists": bool(self.plugin.exists(_model_name(b), _optional_version(b)))}}
        if method == "list":
            models = [_as_dict(s, "list()") for s in self.plugin.list()]
            return {"type": "reply", "id": mid, "body": {"models": models}}
        raise Error("bad_request", "unknown method '%s'" % method)

    def _answer(self, req, deadline):
        """The frames of the final answer to a request (never raises)."""
        try:
            out = self._handle(req, deadline)
        except BaseException as e:  # noqa: B902 -- every failure becomes an answer
            if not isinstance(e, Error):
                _log_exception("handler for '%s' raised" % req["method"])
            return codec.encode(_error_message(req["id"], e))
        try:
            return codec.encode(out)
        except (TypeError, ValueError) as e:  # a reply the codec refuses (a set, too large, ...)
            log("error", "cannot encode the reply to '%s': %s" % (req["method"], e))
            return codec.encode(_error_message(req["id"], Error("internal", "cannot encode the reply: %s" % e)))

    def _worker(self):
        push = self._push_socket()
        try:
            while True:
                with self.mu:
                    self.mu.wait_for(lambda: (self.configured and self.tasks) or self.stopping)
                    if self.stopping:
                        return
                    req, deadline = self.tasks.popleft()
                    self.running += 1
                try:
                    if deadline is not None and time.monotonic() > deadline:
                        frames = codec.encode(_error_message(
                            req["id"], Error("timeout", "deadline passed before the request started")))
                    else:
                        frames = self._answer(req, deadline)
                    push.send_multipart(frames, copy=False)
                finally:
                    with self.mu:
                        self.running -= 1
                        self.mu.notify_all()
        finally:
            push.close()

    def _start_download(self, m):
        mid, b = m["id"], m["body"]
        try:
            name = _model_name(b)
            version = _require_string(b, "version")
            why = check_version(version)
            if why:
                raise Error("bad_request", why)
            file = _require_string(b, "file")
            why = check_file_name(file)
            if why:
                raise Error("bad_request", why)
            offset = _optional_uint(b, "offset", 0, 0, codec.UINT64_MAX)
            credit = _optional_uint(b, "credit", DEFAULT_CREDIT, 1, 1024)
            chunk = _optional_uint(b, "chunk_size", DEFAULT_CHUNK, MIN_CHUNK, codec.MAX_DATA_BYTES)
        except Error as e:
            self._send(_error_message(mid, e))
            return
        st = _Download(credit)
        with self.mu:
            if len(self.downloads) >= MAX_DOWNLOADS or mid in self.downloads:
                why = "download id already in use" if mid in self.downloads else "too many downloads at once"
                self._send(_error_message(mid, Error("unavailable", why)))
                return
            self.downloads[mid] = st
            self.running += 1
            self.threads = [t for t in self.threads if t.is_alive()]
        req = DownloadRequest(name=name, version=version, file=file, offset=offset)
        idle = (m["timeout_ms"] or 60000) / 1000.0
        t = threading.Thread(target=self._download, args=(mid, req, st, chunk, idle),
                             name="modelzoo-download-%d" % mid, daemon=True)
        self.threads.append(t)
        t.start()

    def _download(self, mid, req, st, chunk, idle):
        push = None
        try:
            push = self._push_socket()
            sink = _Sink(self, push, mid, st, chunk, idle, req.offset)
            try:
                if not self._wait_configured():
                    raise Error("unavailable", "plugin is stopping")
                self.plugin.download(req, sink)
                out = {"type": "reply", "id": mid, "body": {"offset": req.offset, "size": sink.sent}}
            except BaseException as e:  # noqa: B902
                if not isinstance(e, Error):
                    _log_exception("download of '%s' raised" % req.file)
                out = _error_message(mid, e)
            if not st.cancelled:
                push.send_multipart(codec.encode(out))
        finally:
            if push is not None:
                push.close()
            with self.mu:
                self.downloads.pop(mid, None)
                self.running -= 1
                self.mu.notify_all()

    # -- main loop -----------------------------------------------------------------------------

    def _on_message(self, m):
        t = m["type"]
        if t == "request":
            if self.stopping:
                self._send(_error_message(m["id"], Error("unavailable", "plugin is stopping")))
                return
            if m["method"] == "download" and self.kind == "registry":
                self._start_download(m)
                return
            deadline = time.monotonic() + m["timeout_ms"] / 1000.0 if m["timeout_ms"] else None
            with self.mu:
                inline = self.inline_requests and self.configured
                if not inline:
                    self.tasks.append((m, deadline))
                    self.mu.notify()
            if inline:
                self._send_frames(self._answer(m, deadline))
        elif t in ("credit", "cancel"):
            with self.mu:
                st = self.downloads.get(m["id"])
            if st is None:
                return  # finished already: nothing to do
            with st.cond:
                if t == "cancel":
                    st.cancelled = True
                else:
                    chunks = m["body"].get("chunks")
                    if type(chunks) is int and chunks > 0:
                        st.credit += min(chunks, MAX_CREDIT_GRANT)
                st.cond.notify_all()
        elif t == "goodbye":
            log("info", "daemon asked the plugin to stop")
            self.stopping = True
        # heartbeats only refresh liveness; anything else is ignored

    def _drain_wakeup(self, events):
        if self.wake_r is not None and self.wake_r.fileno() in events:
            try:
                while self.wake_r.recv(64):
                    pass
            except OSError:
                pass

    def _main_loop(self, poller):
        now = time.monotonic()
        last_heard = now
        next_beat = now + self.heartbeat_s
        silence_limit = self.heartbeat_s * self.liveness
        while not self.stopping:
            if self.signalled:
                log("info", "stopping on signal %d" % self.signalled)
                break
            with self.mu:
                config_error = self.config_error
            if config_error is not None:
                log("error", "configuration rejected: %s" % config_error)
                self.exit_code = EXIT_CONFIG_REJECTED
                break
            wait = min(max(next_beat - time.monotonic(), 0.0), self.heartbeat_s)
            events = dict(poller.poll(int(wait * 1000 + 0.999)))
            now = time.monotonic()
            self._drain_wakeup(events)
            if self.dealer in events:
                for _ in range(256):  # drain a batch, then let the other work run
                    try:
                        frames = self.dealer.recv_multipart(zmq.NOBLOCK)
                    except zmq.Again:
                        break
                    last_heard = now
                    try:
                        msg = codec.decode(frames)
                    except codec.ProtocolError as e:
                        log("warn", "dropped an invalid message from the daemon: %s" % e)
                        continue
                    self._on_message(msg)
                    if self.stopping:
                        break
            if self.pull in events:
                for _ in range(256):
                    try:
                        frames = self.pull.recv_multipart(zmq.NOBLOCK, copy=False)
                    except zmq.Again:
                        break
                    if len(frames) == 1 and len(frames[0]) == 0:
                        continue  # a wake-up from the configure thread
                    self._send_frames(frames)
            if now >= next_beat:
                self._send({"type": "heartbeat", "body": {}})
                next_beat = now + self.heartbeat_s
            if now - last_heard > silence_limit:
                log("error", "daemon silent for %d ms; exiting" % int((now - last_heard) * 1000))
                self.exit_code = EXIT_DAEMON_SILENT
                break

    def _shutdown_threads(self):
        with self.mu:
            self.stopping = True
            for st in self.downloads.values():
                with st.cond:
                    st.cancelled = True
                    st.cond.notify_all()
            self.mu.notify_all()
            idle = self.mu.wait_for(lambda: self.running == 0, SHUTDOWN_GRACE_S)
        if not idle:
            # A handler is stuck in the author's code and cannot be interrupted. Leave rather
            # than hang: the daemon treats the plugin as exited either way.
            log("warn", "a handler did not finish within 2 s of shutdown; exiting without it")
            if self.exit_on_stuck:
                sys.stderr.flush()
                os._exit(self.exit_code)
            return False
        for t in self.threads:
            t.join(1.0)
        return True

    def run(self):
        endpoint = self.env.get("MODELZOO_ENDPOINT", "")
        if not endpoint:
            log("error", "MODELZOO_ENDPOINT is not set: this program is a modelzoo plugin and is started by "
                         "modelzood (or by `modelzoo plugin test`)")
            return EXIT_NO_ENDPOINT
        self.wake_r = self.wake_w = None
        restore = self._install_signals()
        self.ctx = zmq.Context()
        clean = True
        try:
            self.dealer = self.ctx.socket(zmq.DEALER)
            self.dealer.setsockopt(zmq.LINGER, 0)
            self.dealer.setsockopt(zmq.MAXMSGSIZE, 16 << 20)
            self.dealer.setsockopt(zmq.SNDHWM, 10000)
            self.dealer.setsockopt(zmq.RCVHWM, 10000)
            server_key = self.env.get("MODELZOO_SERVER_KEY", "")
            if server_key:
                # A plugin on another host (docs/security.md, "Remote peers over TCP").
                try:
                    public, secret = read_key_file(self.env.get("MODELZOO_KEY_FILE", ""))
                except ValueError as e:
                    log("error", "MODELZOO_SERVER_KEY is set but CURVE cannot be used: %s" % e)
                    return EXIT_NO_ENDPOINT
                self.dealer.curve_serverkey = server_key.encode()
                self.dealer.curve_publickey = public.encode()
                self.dealer.curve_secretkey = secret.encode()
            self.dealer.connect(endpoint)
            self.pull = self.ctx.socket(zmq.PULL)
            self.pull.setsockopt(zmq.LINGER, 0)
            self.pull.bind(self.out_endpoint)
            poller = zmq.Poller()
            poller.register(self.dealer, zmq.POLLIN)
            poller.register(self.pull, zmq.POLLIN)
            if self.wake_r is not None:
                poller.register(self.wake_r.fileno(), zmq.POLLIN)
            if self._handshake(poller):
                with self.mu:
                    self.running += 1  # the configure thread counts as running until it returns
                threads = [threading.Thread(target=self._configure, name="modelzoo-configure", daemon=True)]
                threads += [threading.Thread(target=self._worker, name="modelzoo-worker-%d" % i, daemon=True)
                            for i in range(POOL_THREADS)]
                self.threads.extend(threads)
                for t in threads:
                    t.start()
                self._main_loop(poller)
                reason = ("configuration rejected: %s" % self.config_error
                          if self.exit_code == EXIT_CONFIG_REJECTED else "plugin stopping")
                self._send({"type": "goodbye", "body": {"reason": reason}})
                clean = self._shutdown_threads()
        finally:
            # A short linger lets the goodbye leave; a dead daemon delays the exit by that at most.
            if self.dealer is not None:
                self.dealer.close(linger=200)
            if self.pull is not None:
                self.pull.close()
            if clean:
                self.ctx.term()
            restore()
        return self.exit_code

    def _install_signals(self):
        """SIGTERM/SIGINT end the session (main thread only); returns a function undoing it."""
        if threading.current_thread() is not threading.main_thread():
            return lambda: None

        def on_signal(signum, frame):
            self.signalled = signum

        previous = {s: signal.signal(s, on_signal) for s in (signal.SIGTERM, signal.SIGINT)}
        try:
            self.wake_r, self.wake_w = socket.socketpair()
            self.wake_r.setblocking(False)
            self.wake_w.setblocking(False)
            previous_fd = signal.set_wakeup_fd(self.wake_w.fileno(), warn_on_full_buffer=False)
        except (OSError, ValueError):
            previous_fd = None

        def restore():
            for s, h in previous.items():
                signal.signal(s, h)
            if previous_fd is not None:
                signal.set_wakeup_fd(previous_fd)
            for s in (self.wake_r, self.wake_w):
                if s is not None:
                    s.close()

        return restore


# ---------------------------------------------------------------------------------------------
# run()


def _is_extension(plugin):
    if isinstance(plugin, Extension):
        return True
    if isinstance(plugin, Registry):
        return False
    if callable(getattr(plugin, "hook", None)) and not callable(getattr(plugin, "metadata", None)):
        return True
    if callable(getattr(plugin, "metadata", None)):
        return False
    raise TypeError("run() needs a modelzoo_plugin.Registry or Extension, not %s" % type(plugin).__name__)


def run(plugin, *, name, version="0.0.0", handles=("*",), priority=None, inline_requests=None,
        points=None, formats=None, order=None, env=None, hello_timeout=10.0, exit_on_stuck=None):
    """Serves `plugin` (a Registry or an Extension) until the daemon lets it go; returns the exit status.

    Registry:   run(registry, name=..., version=..., priority=0, handles=["*"], inline_requests=False)
    Extension:  run(extension, name=..., version=..., points=[...], formats=[], order=0, handles=["*"])

    The daemon's configuration may override priority, handles, points, formats and order.
    Connects to the daemon named by the environment (MODELZOO_ENDPOINT, MODELZOO_PLUGIN_ID,
    MODELZOO_TOKEN; `env` replaces os.environ, for tests). Returns 0 after the daemon's goodbye
    or SIGTERM/SIGINT, 1 when configure() raised, 2 without MODELZOO_ENDPOINT, 3 when the hello
    is rejected, no welcome comes within `hello_timeout` seconds or the protocol does not
    match, 4 when the daemon went silent. Use it as `sys.exit(run(...))`.

    inline_requests=True runs metadata, exists and list on the main loop (lower latency); only
    for handlers that never block, since no heartbeat is sent while one runs.
    Signal handlers (SIGTERM, SIGINT) are installed only when run() is called from the main
    thread. When a handler is still running 2 s after the end of the session, the process
    exits at once (os._exit) if run() was called from the main thread (`exit_on_stuck`).
    """
    if _is_extension(plugin):
        if priority is not None or inline_requests is not None:
            raise TypeError("priority and inline_requests are registry settings; an extension has order")
        points = list(points or [])
        if not points:
            raise ValueError("an extension serves at least one point (points=[...])")
        kind = "extension"
        fields = {"kind": "extension", "capabilities": ["hook"], "points": points,
                  "formats": list(formats or []), "order": int(order or 0), "handles": list(handles)}
        inline = False
    else:
        if points is not None or formats is not None or order is not None:
            raise TypeError("points, formats and order are extension settings; a registry has priority")
        kind = "registry"
        fields = {"kind": "registry", "capabilities": list(REGISTRY_CAPABILITIES),
                  "priority": int(priority or 0), "handles": list(handles)}
        inline = bool(inline_requests)
    if isinstance(handles, str):
        raise TypeError("handles is a list of patterns, not a string")
    if exit_on_stuck is None:
        exit_on_stuck = threading.current_thread() is threading.main_thread()
    session = _Session(plugin, kind, name, version, fields, inline, env, hello_timeout, exit_on_stuck)
    return session.run()
