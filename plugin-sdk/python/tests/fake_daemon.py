"""A fake modelzood for the SDK's tests: a ROUTER socket speaking the plugin side of the bus."""

import os
import shutil
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
SDK_DIR = os.path.dirname(HERE)
if SDK_DIR not in sys.path:
    sys.path.insert(0, SDK_DIR)

import zmq  # noqa: E402

import modelzoo_plugin as mp  # noqa: E402
from modelzoo_plugin import codec, session  # noqa: E402

# Plugins run on threads of the test process: keep their log lines out of the test output
# unless asked for (MZPY_TEST_LOG=1).
if not os.environ.get("MZPY_TEST_LOG"):
    session.LOG_FD = os.open(os.devnull, os.O_WRONLY)


class FakeDaemon:
    """Binds a plugin socket in a temporary directory; one plugin connects to it."""

    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="mzpy-")
        self.endpoint = "ipc://%s/plugins.sock" % self.dir
        self.ctx = zmq.Context()
        self.router = self.ctx.socket(zmq.ROUTER)
        self.router.setsockopt(zmq.LINGER, 0)
        self.router.bind(self.endpoint)
        self.peer = None
        self.beat = 0.05          # the fake daemon's own heartbeat while it waits (None: silent)
        self._next_beat = 0.0
        self.heartbeats = 0       # heartbeats received from the plugin
        self.plugin_id, self.token = "test.1", "0123456789abcdef0123456789abcdef"

    def env(self):
        return {"MODELZOO_ENDPOINT": self.endpoint, "MODELZOO_PLUGIN_ID": self.plugin_id,
                "MODELZOO_TOKEN": self.token}

    def close(self):
        self.router.close()
        self.ctx.term()
        shutil.rmtree(self.dir, ignore_errors=True)

    def _maybe_beat(self):
        if self.beat is None or self.peer is None:
            return
        now = time.monotonic()
        if now >= self._next_beat:
            self.send({"type": "heartbeat", "body": {}})
            self._next_beat = now + self.beat

    def recv(self, timeout=5.0, heartbeats=False):
        """The next message from the plugin (heartbeats skipped unless asked), or None."""
        deadline = time.monotonic() + timeout
        while True:
            self._maybe_beat()
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            if not self.router.poll(int(min(left, 0.02) * 1000) + 1):
                continue
            frames = self.router.recv_multipart()
            self.peer = frames[0]
            msg = codec.decode(frames[1:])
            if msg["type"] == "heartbeat":
                self.heartbeats += 1
                if not heartbeats:
                    continue
            return msg

    def quiet(self, seconds):
        """Messages other than heartbeats received within `seconds`."""
        out = []
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            m = self.recv(max(0.0, deadline - time.monotonic()))
            if m is not None:
                out.append(m)
        return out

    def send(self, msg):
        self.router.send_multipart([self.peer] + codec.encode(msg))

    def send_raw(self, frames):
        self.router.send_multipart([self.peer] + list(frames))

    def welcome(self, heartbeat_ms=50, liveness=100, config=None, protocol=1):
        hello = self.recv()
        assert hello is not None and hello["type"] == "hello", hello
        self.send({"type": "welcome", "body": {"protocol": protocol, "plugin_id": self.plugin_id,
                                                "heartbeat_ms": heartbeat_ms, "heartbeat_liveness": liveness,
                                                "config": config or {}}})
        return hello

    def request(self, mid, method, body=None, timeout_ms=5000):
        self.send({"type": "request", "id": mid, "method": method, "timeout_ms": timeout_ms, "body": body or {}})

    def call(self, mid, method, body=None, timeout_ms=5000, wait=5.0):
        """Sends a request and returns its final answer (chunks are not expected)."""
        self.request(mid, method, body, timeout_ms)
        while True:
            m = self.recv(wait)
            if m is None or m.get("id") == mid:
                return m


class PluginThread:
    """Runs modelzoo_plugin.run() on a thread against a FakeDaemon; join() gives the exit status."""

    def __init__(self, plugin, daemon, **kwargs):
        kwargs.setdefault("name", "tester")
        kwargs.setdefault("version", "1.2.3")
        self.status = None
        self.error = None

        def main():
            try:
                self.status = mp.run(plugin, env=daemon.env(), **kwargs)
            except BaseException as e:  # noqa: B902
                self.error = e

        self.thread = threading.Thread(target=main, daemon=True)
        self.thread.start()

    def join(self, timeout=10.0):
        self.thread.join(timeout)
        if self.error is not None:
            raise self.error
        return None if self.thread.is_alive() else self.status
