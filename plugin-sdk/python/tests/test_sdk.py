"""Tests of the Python plugin SDK: the codec, names, and whole sessions against a fake daemon.

Run: /usr/bin/python3 -m unittest discover -s plugin-sdk/python/tests
"""

import hashlib
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
import unittest

import msgpack

from fake_daemon import SDK_DIR, FakeDaemon, PluginThread

import modelzoo_plugin as mp
from modelzoo_plugin import codec

SMALL = bytes(range(256)) * 39 + b"0123456789ABCDEF"  # 10000 bytes
BIG = hashlib.sha256(b"seed").digest() * (3 << 15)    # 3 MiB


class MemRegistry(mp.Registry):
    """demo/tiny 1.0.0 and 2.0.0-rc.1, slow/model, boom/model; knobs in the configuration."""

    FILES = {"small.bin": SMALL, "big.bin": BIG}

    def __init__(self):
        self.configured_with = None
        self.sink_errors = []
        self.download_done = threading.Event()

    def configure(self, config):
        time.sleep(config.get("configure_delay", 0))
        if config.get("fail"):
            raise ValueError(config["fail"])
        self.configured_with = config

    def metadata(self, name, version):
        if name == "boom/model":
            raise KeyError("kaboom")
        if name == "slow/model":
            time.sleep(0.6)
        if name == "set/model":
            return {"name": name, "version": "1.0.0", "files": {1, 2}}
        if name not in ("demo/tiny", "slow/model") or version not in ("", "1.0.0"):
            raise mp.NotFound("no model '%s'" % name)
        return mp.ModelMetadata(name=name, version="1.0.0", description="tiny", tags=["t"], files=[
            mp.FileInfo(n, len(d), hashlib.sha256(d).hexdigest()) for n, d in sorted(self.FILES.items())])

    def list(self):
        return [mp.ModelSummary("demo/tiny", ["1.0.0"], "tiny"), {"name": "slow/model", "versions": ["1.0.0"]}]

    def download(self, req, sink):
        self.metadata(req.name, req.version)
        data = self.FILES.get(req.file)
        if data is None:
            raise mp.NotFound("no file '%s'" % req.file)
        if req.offset > len(data):
            raise mp.BadRequest("offset past the end")
        try:
            sink.write(data[req.offset:])
        except mp.Error as e:
            self.sink_errors.append(e)
            raise
        finally:
            self.download_done.set()


class SessionTest(unittest.TestCase):
    def setUp(self):
        self.d = FakeDaemon()
        self.plugins = []

    def tearDown(self):
        for p in self.plugins:
            if p.thread.is_alive():
                try:
                    self.d.send({"type": "goodbye", "body": {"reason": "test over"}})
                except Exception:
                    pass
                p.thread.join(5)
        self.d.close()

    def start(self, plugin=None, config=None, heartbeat_ms=50, liveness=100, **kwargs):
        plugin = plugin or MemRegistry()
        p = PluginThread(plugin, self.d, **kwargs)
        self.plugins.append(p)
        hello = self.d.welcome(heartbeat_ms=heartbeat_ms, liveness=liveness, config=config)
        return plugin, p, hello

    def goodbye(self, p):
        self.d.send({"type": "goodbye", "body": {"reason": "daemon stopping"}})
        bye = self.d.recv(3)
        self.assertEqual(bye["type"], "goodbye")
        self.assertEqual(p.join(5), 0)
        return bye

    # -- starting and stopping ---------------------------------------------------------------

    def test_without_endpoint_exits_2(self):
        self.assertEqual(mp.run(MemRegistry(), name="x", env={}), mp.EXIT_NO_ENDPOINT)
        self.assertEqual(mp.EXIT_NO_ENDPOINT, 2)

    def test_hello_carries_every_field_and_goodbye_exits_0(self):
        _, p, hello = self.start(priority=7, handles=["demo/*"])
        b = hello["body"]
        self.assertEqual(b["protocol"], [1])
        self.assertEqual(b["plugin_id"], "test.1")
        self.assertEqual(b["token"], self.d.token)
        self.assertEqual((b["name"], b["version"], b["kind"]), ("tester", "1.2.3", "registry"))
        self.assertEqual(b["pid"], os.getpid())
        self.assertEqual(b["capabilities"], ["metadata", "exists", "list", "download"])
        self.assertEqual((b["priority"], b["handles"]), (7, ["demo/*"]))
        bye = self.goodbye(p)
        self.assertEqual(bye["body"], {"reason": "plugin stopping"})

    def test_rejected_hello_exits_3(self):
        p = PluginThread(MemRegistry(), self.d)
        self.assertEqual(self.d.recv()["type"], "hello")
        self.d.send({"type": "reject", "error": {"code": "unauthorized", "message": "wrong token"}, "body": {}})
        self.assertEqual(p.join(5), 3)

    def test_protocol_mismatch_exits_3(self):
        p = PluginThread(MemRegistry(), self.d)
        self.d.welcome(protocol=2)
        self.assertEqual(p.join(5), 3)

    def test_no_welcome_exits_3(self):
        p = PluginThread(MemRegistry(), self.d, hello_timeout=0.3)
        self.assertEqual(self.d.recv()["type"], "hello")
        self.d.send({"type": "heartbeat", "body": {}})  # ignored while waiting for the welcome
        self.assertEqual(p.join(5), 3)

    def test_silent_daemon_exits_4(self):
        _, p, _ = self.start(heartbeat_ms=20, liveness=3)
        self.d.beat = None  # say nothing more
        start = time.monotonic()
        self.assertEqual(p.join(5), 4)
        self.assertLess(time.monotonic() - start, 2.0)

    def test_configuration_error_exits_1_with_reason(self):
        _, p, _ = self.start(config={"fail": "root does not exist"})
        bye = self.d.recv(3)
        self.assertEqual(bye["type"], "goodbye")
        self.assertEqual(bye["body"]["reason"], "configuration rejected: root does not exist")
        self.assertEqual(p.join(5), 1)

    def test_configuration_reaches_configure(self):
        reg, p, _ = self.start(config={"root": "/x", "n": 3})
        self.assertEqual(self.d.call(1, "list")["type"], "reply")
        self.assertEqual(reg.configured_with, {"root": "/x", "n": 3})
        self.goodbye(p)

    def test_sigterm_sends_goodbye_and_exits_0(self):
        code = textwrap.dedent("""
            import sys, time
            sys.path.insert(0, %r)
            import modelzoo_plugin as mp
            class R(mp.Registry):
                def metadata(self, name, version): raise mp.NotFound(name)
                def list(self): return []
            sys.exit(mp.run(R(), name="sig", version="1.0.0"))
        """ % SDK_DIR)
        env = dict(os.environ, **self.d.env())
        proc = subprocess.Popen([sys.executable, "-c", code], env=env, stderr=subprocess.PIPE)
        try:
            self.d.welcome()
            self.assertEqual(self.d.call(1, "exists", {"name": "a/b"})["body"], {"exists": False})
            proc.send_signal(signal.SIGTERM)
            bye = self.d.recv(3)
            self.assertEqual(bye["type"], "goodbye")
            self.assertEqual(proc.wait(5), 0)
            self.assertIn(b"info stopping on signal 15", proc.stderr.read())
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            proc.stderr.close()

    def test_token_is_removed_from_the_environment_of_a_real_plugin(self):
        code = textwrap.dedent("""
            import os, sys
            sys.path.insert(0, %r)
            import modelzoo_plugin as mp
            class R(mp.Registry):
                def configure(self, config): mp.log("info", "token=%%s" %% os.environ.get("MODELZOO_TOKEN"))
                def metadata(self, name, version): raise mp.NotFound(name)
                def list(self): return []
            sys.exit(mp.run(R(), name="env", version="1.0.0"))
        """ % SDK_DIR)
        proc = subprocess.Popen([sys.executable, "-c", code], env=dict(os.environ, **self.d.env()),
                                stderr=subprocess.PIPE)
        try:
            self.assertEqual(self.d.welcome()["body"]["token"], self.d.token)
            self.assertEqual(self.d.call(1, "list")["type"], "reply")
            self.d.send({"type": "goodbye", "body": {}})
            self.assertEqual(proc.wait(5), 0)
            self.assertIn(b"info token=None", proc.stderr.read())
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            proc.stderr.close()

    # -- heartbeats ----------------------------------------------------------------------------

    def test_heartbeats_every_interval_even_while_handlers_block(self):
        _, p, _ = self.start(heartbeat_ms=50)
        self.d.recv(0.5)
        self.assertGreaterEqual(self.d.heartbeats, 6)
        before = self.d.heartbeats
        reply = self.d.call(1, "metadata", {"name": "slow/model"})  # the handler sleeps 0.6 s
        self.assertEqual(reply["type"], "reply")
        self.assertGreaterEqual(self.d.heartbeats - before, 7)
        self.goodbye(p)

    def test_invalid_messages_from_the_daemon_are_dropped(self):
        _, p, _ = self.start()
        self.d.send_raw([b"\xc1"])
        self.d.send_raw([b"\x82\xa4type\xa7request\xa4body\x80"])  # a request without id
        self.d.send_raw([msgpack.packb({"type": "credit", "id": 99, "body": {"chunks": 1}})])  # unknown id
        self.d.send_raw([msgpack.packb({"type": "cancel", "id": 98, "body": {}})])
        self.d.send_raw([codec.encode({"type": "heartbeat", "body": {}})[0], b"data"])  # data frame: invalid
        self.assertEqual(self.d.quiet(0.2), [])
        self.assertEqual(self.d.call(5, "exists", {"name": "demo/tiny"})["body"], {"exists": True})
        self.goodbye(p)

    # -- requests ------------------------------------------------------------------------------

    def test_metadata_exists_list(self):
        _, p, _ = self.start()
        r = self.d.call(1, "metadata", {"name": "demo/tiny"})
        self.assertEqual(r["type"], "reply")
        self.assertEqual(r["body"]["version"], "1.0.0")
        self.assertEqual(r["body"]["files"][0], {"name": "big.bin", "size": len(BIG),
                                                 "sha256": hashlib.sha256(BIG).hexdigest()})
        self.assertEqual(r["body"]["author"], "")
        r = self.d.call(2, "metadata", {"name": "demo/other", "version": None})
        self.assertEqual(r["error"]["code"], "not_found")
        self.assertEqual(r["error"]["message"], "no model 'demo/other'")
        self.assertEqual(self.d.call(3, "exists", {"name": "demo/tiny", "version": "1.0.0"})["body"], {"exists": True})
        self.assertEqual(self.d.call(4, "exists", {"name": "demo/tiny", "version": "2.0.0"})["body"], {"exists": False})
        models = self.d.call(5, "list")["body"]["models"]
        self.assertEqual(models, [{"name": "demo/tiny", "versions": ["1.0.0"], "description": "tiny"},
                                  {"name": "slow/model", "versions": ["1.0.0"]}])
        self.goodbye(p)

    def test_bad_requests(self):
        _, p, _ = self.start()
        cases = [
            ("frobnicate", {}, "unknown method 'frobnicate'"),
            ("metadata", {}, "request lacks string parameter 'name'"),
            ("metadata", {"name": 5}, "request lacks string parameter 'name'"),
            ("metadata", {"name": "../etc"}, "model name has a '..' segment"),
            ("metadata", {"name": "a/b", "version": "1.0"}, "version '1.0' is not a semantic version (MAJOR.MINOR.PATCH)"),
            ("metadata", {"name": "a/b", "version": 1}, "parameter 'version' is not a string"),
            ("download", {"name": "demo/tiny", "version": "1.0.0"}, "request lacks string parameter 'file'"),
            ("download", {"name": "demo/tiny", "file": "a"}, "request lacks string parameter 'version'"),
            ("download", {"name": "demo/tiny", "version": "1.0.0", "file": ".x"}, "file name has a segment starting with '.'"),
            ("download", {"name": "demo/tiny", "version": "1.0.0", "file": "a", "chunk_size": 100},
             "parameter 'chunk_size' is out of range [4096, 8388608]"),
            ("download", {"name": "demo/tiny", "version": "1.0.0", "file": "a", "credit": 0},
             "parameter 'credit' is out of range [1, 1024]"),
            ("download", {"name": "demo/tiny", "version": "1.0.0", "file": "a", "offset": -1},
             "parameter 'offset' is not a non-negative integer"),
            ("download", {"name": "demo/tiny", "version": "1.0.0", "file": "a", "offset": 1.5},
             "parameter 'offset' is not a non-negative integer"),
        ]
        for i, (method, body, message) in enumerate(cases, 1):
            r = self.d.call(i, method, body)
            self.assertEqual((r["type"], r["error"]), ("error", {"code": "bad_request", "message": message}), body)
        self.goodbye(p)

    def test_exceptions_become_internal_errors(self):
        _, p, _ = self.start()
        r = self.d.call(1, "metadata", {"name": "boom/model"})
        self.assertEqual(r["error"], {"code": "internal", "message": "'kaboom'"})
        r = self.d.call(2, "metadata", {"name": "set/model"})
        self.assertEqual(r["error"]["code"], "internal")
        self.assertIn("cannot encode the reply", r["error"]["message"])
        self.goodbye(p)

    def test_requests_wait_for_configure_and_expired_ones_time_out(self):
        _, p, _ = self.start(config={"configure_delay": 0.4})
        self.d.request(1, "exists", {"name": "demo/tiny"}, timeout_ms=100)
        self.d.request(2, "exists", {"name": "demo/tiny"}, timeout_ms=5000)
        self.d.request(3, "exists", {"name": "demo/tiny"}, timeout_ms=0)  # no deadline
        got = {}
        while len(got) < 3:
            m = self.d.recv(3)
            self.assertIsNotNone(m)
            got[m["id"]] = m
        self.assertEqual(got[1]["error"], {"code": "timeout", "message": "deadline passed before the request started"})
        self.assertEqual(got[2]["body"], {"exists": True})
        self.assertEqual(got[3]["body"], {"exists": True})
        self.goodbye(p)

    def test_requests_run_in_parallel(self):
        _, p, _ = self.start()
        start = time.monotonic()
        for i in range(1, 5):
            self.d.request(i, "metadata", {"name": "slow/model"})
        ids = {self.d.recv(3)["id"] for _ in range(4)}
        self.assertEqual(ids, {1, 2, 3, 4})
        self.assertLess(time.monotonic() - start, 1.5)  # four 0.6 s handlers at once
        self.goodbye(p)

    def test_inline_requests(self):
        _, p, _ = self.start(inline_requests=True)
        self.assertEqual(self.d.call(1, "exists", {"name": "demo/tiny"})["body"], {"exists": True})
        self.assertEqual(self.d.call(2, "nope")["error"]["code"], "bad_request")
        self.goodbye(p)

    # -- downloads ------------------------------------------------------------------------------

    def collect_download(self, mid, credit_each=1, limit=10.0):
        """Receives chunks of download `mid`, granting `credit_each` per chunk; returns (data, final)."""
        data = bytearray()
        while True:
            m = self.d.recv(limit)
            self.assertIsNotNone(m, "download stalled")
            if m["id"] != mid:
                continue
            if m["type"] != "chunk":
                return bytes(data), m
            self.assertEqual(m["body"]["offset"], len(data) + self.offset0)
            data += m["data"]
            if credit_each:
                self.d.send({"type": "credit", "id": mid, "body": {"chunks": credit_each}})

    def test_download_paced_by_credit(self):
        _, p, _ = self.start()
        self.d.request(7, "download", {"name": "demo/tiny", "version": "1.0.0", "file": "small.bin", "offset": 0,
                                       "credit": 2, "chunk_size": 4096})
        first = [self.d.recv(3) for _ in range(2)]
        self.assertEqual([(m["type"], m["body"]["offset"], len(m["data"])) for m in first],
                         [("chunk", 0, 4096), ("chunk", 4096, 4096)])
        self.assertEqual(self.d.quiet(0.3), [], "a chunk was sent without credit")
        self.d.send({"type": "credit", "id": 7, "body": {"chunks": 1}})
        last = self.d.recv(3)
        self.assertEqual((last["type"], last["body"]["offset"], len(last["data"])), ("chunk", 8192, 1808))
        final = self.d.recv(3)
        self.assertEqual((final["type"], final["id"], final["body"]), ("reply", 7, {"offset": 0, "size": 10000}))
        self.assertEqual(b"".join(m["data"] for m in first + [last]), SMALL)
        self.goodbye(p)

    def test_download_from_an_offset_and_of_a_large_file(self):
        _, p, _ = self.start()
        self.offset0 = 5000
        self.d.request(8, "download", {"name": "demo/tiny", "version": "1.0.0", "file": "small.bin", "offset": 5000,
                                       "credit": 16, "chunk_size": 4096})
        data, final = self.collect_download(8)
        self.assertEqual(data, SMALL[5000:])
        self.assertEqual(final["body"], {"offset": 5000, "size": 5000})
        self.offset0 = 0
        self.d.request(9, "download", {"name": "demo/tiny", "version": "1.0.0", "file": "big.bin", "offset": 0,
                                       "credit": 16, "chunk_size": 1 << 20})
        data, final = self.collect_download(9)
        self.assertEqual(hashlib.sha256(data).digest(), hashlib.sha256(BIG).digest())
        self.assertEqual(final["body"], {"offset": 0, "size": len(BIG)})
        r = self.d.call(10, "download", {"name": "demo/tiny", "version": "1.0.0", "file": "none.bin"})
        self.assertEqual(r["error"], {"code": "not_found", "message": "no file 'none.bin'"})
        self.goodbye(p)

    def test_cancel_stops_a_download_without_an_answer(self):
        reg, p, _ = self.start()
        self.d.request(11, "download", {"name": "demo/tiny", "version": "1.0.0", "file": "big.bin", "credit": 1,
                                        "chunk_size": 65536})
        self.assertEqual(self.d.recv(3)["type"], "chunk")
        self.d.send({"type": "cancel", "id": 11, "body": {}})
        self.assertTrue(reg.download_done.wait(3))
        self.assertEqual(self.d.quiet(0.3), [])
        self.assertEqual(reg.sink_errors[0].code, "unavailable")
        self.d.send({"type": "credit", "id": 11, "body": {"chunks": 5}})  # for a finished download: ignored
        self.assertEqual(self.d.quiet(0.2), [])
        self.goodbye(p)

    def test_download_without_credit_times_out(self):
        reg, p, _ = self.start()
        self.d.request(12, "download", {"name": "demo/tiny", "version": "1.0.0", "file": "big.bin", "credit": 1,
                                        "chunk_size": 65536}, timeout_ms=200)
        self.assertEqual(self.d.recv(3)["type"], "chunk")
        start = time.monotonic()
        final = self.d.recv(3)
        self.assertEqual(final["error"], {"code": "timeout", "message": "no credit from the daemon within the stall timeout"})
        self.assertGreater(time.monotonic() - start, 0.15)
        self.goodbye(p)

    def test_at_most_16_downloads_and_goodbye_abandons_them(self):
        reg, p, _ = self.start()
        for i in range(1, 17):
            self.d.request(i, "download", {"name": "demo/tiny", "version": "1.0.0", "file": "big.bin", "credit": 1,
                                           "chunk_size": 4096})
        chunks = [self.d.recv(3) for _ in range(16)]
        self.assertEqual({m["type"] for m in chunks}, {"chunk"})
        r = self.d.call(17, "download", {"name": "demo/tiny", "version": "1.0.0", "file": "big.bin"})
        self.assertEqual(r["error"], {"code": "unavailable", "message": "too many downloads at once"})
        r = self.d.call(16, "download", {"name": "demo/tiny", "version": "1.0.0", "file": "big.bin"})
        self.assertEqual(r["error"], {"code": "unavailable", "message": "download id already in use"})
        self.d.send({"type": "goodbye", "body": {"reason": "daemon stopping"}})
        msgs = self.d.quiet(0.5)
        self.assertEqual([m["type"] for m in msgs], ["goodbye"], "abandoned downloads get no answer")
        self.assertEqual(p.join(5), 0)

    def test_sink_write_file_and_empty_files(self):
        class Files(mp.Registry):
            def metadata(self, name, version):
                raise mp.NotFound(name)

            def list(self):
                return []

            def download(self, req, sink):
                if req.file == "empty.bin":
                    sink.write(b"")
                    return
                import io
                sink.write_file(io.BytesIO(SMALL))
                sink.write(bytearray(b"tail"))

        _, p, _ = self.start(Files())
        self.offset0 = 0
        self.d.request(1, "download", {"name": "a/b", "version": "1.0.0", "file": "x.bin", "chunk_size": 4096})
        data, final = self.collect_download(1)
        self.assertEqual(data, SMALL + b"tail")
        self.assertEqual(final["body"], {"offset": 0, "size": len(SMALL) + 4})
        r = self.d.call(2, "download", {"name": "a/b", "version": "1.0.0", "file": "empty.bin"})
        self.assertEqual((r["type"], r["body"]), ("reply", {"offset": 0, "size": 0}))
        self.goodbye(p)

    # -- the decorator form and extensions ------------------------------------------------------

    def test_function_registry(self):
        reg = mp.FunctionRegistry()

        @reg.on("metadata")
        def metadata(name, version):
            return {"name": name, "version": "0.1.0", "files": []}

        @reg.on("list")
        def models():
            return []

        _, p, _ = self.start(reg)
        self.assertEqual(self.d.call(1, "metadata", {"name": "x/y"})["body"], {"name": "x/y", "version": "0.1.0", "files": []})
        self.assertEqual(self.d.call(2, "exists", {"name": "x/y"})["body"], {"exists": True})
        r = self.d.call(3, "download", {"name": "x/y", "version": "0.1.0", "file": "f"})
        self.assertEqual(r["error"], {"code": "internal", "message": "download() is not implemented"})
        self.goodbye(p)

    def test_extension_hooks(self):
        seen = []

        class Judge(mp.Extension):
            def hook(self, req):
                seen.append(req)
                if req.point == mp.PRE_DOWNLOAD:
                    return mp.HookResult.rewrite("demo/other", "", message="renamed")
                if any(f.format == "bad" for f in req.files):
                    return mp.HookResult.reject("bad file")
                if req.output_dir:
                    return mp.HookResult.replace([mp.OutputFile("w.bin", req.files[0].path), ("x.txt", "/o/x.txt")])
                return mp.HookResult.proceed("fine")

        _, p, hello = self.start(Judge(), points=["pre-download", "post-download"], formats=["bin"], order=5)
        b = hello["body"]
        self.assertEqual((b["kind"], b["capabilities"], b["points"], b["formats"], b["order"], b["handles"]),
                         ("extension", ["hook"], ["pre-download", "post-download"], ["bin"], 5, ["*"]))
        self.assertNotIn("priority", b)
        files = [{"name": "a/w.BAD", "path": "/c/w", "size": 3, "sha256": "ab"}]
        r = self.d.call(1, "hook", {"point": "post-download", "name": "demo/m", "version": "1.0.0",
                                    "metadata": {"name": "demo/m"}, "files": files, "output_dir": ""})
        self.assertEqual(r["body"], {"action": "reject", "reason": "bad file"})
        self.assertEqual((seen[0].files[0].format, seen[0].files[0].size, seen[0].metadata), ("bad", 3, {"name": "demo/m"}))
        self.assertIsNotNone(seen[0].deadline)
        r = self.d.call(2, "hook", {"point": "post-download", "name": "demo/m", "version": "1.0.0",
                                    "files": [{"name": "w.bin", "path": "/c/w"}], "output_dir": "/o"})
        self.assertEqual(r["body"], {"action": "replace", "files": [{"name": "w.bin", "path": "/c/w"},
                                                                    {"name": "x.txt", "path": "/o/x.txt"}]})
        r = self.d.call(3, "hook", {"point": "pre-download", "name": "demo/m", "version": "", "files": []})
        self.assertEqual(r["body"], {"action": "rewrite", "name": "demo/other", "version": "", "message": "renamed"})
        r = self.d.call(4, "hook", {"point": "pre-load", "name": "demo/m", "version": "1.0.0", "files": []})
        self.assertEqual(r["body"], {"action": "continue", "message": "fine"})
        r = self.d.call(5, "hook", {"point": "sideways", "name": "demo/m"})
        self.assertEqual(r["error"], {"code": "bad_request", "message": "unknown extension point 'sideways'"})
        r = self.d.call(6, "download", {"name": "demo/m", "version": "1.0.0", "file": "w.bin"})
        self.assertEqual(r["error"], {"code": "bad_request", "message": "unknown method 'download'"})
        self.goodbye(p)

    def test_run_checks_its_arguments(self):
        with self.assertRaises(TypeError):
            mp.run(MemRegistry(), name="x", points=["pre-load"], env={})
        with self.assertRaises(TypeError):
            mp.run(mp.FunctionExtension(), name="x", points=["pre-load"], priority=3, env={})
        with self.assertRaises(ValueError):
            mp.run(mp.FunctionExtension(), name="x", env={})
        with self.assertRaises(TypeError):
            mp.run(object(), name="x", env={})


class CodecTest(unittest.TestCase):
    def roundtrip(self, msg):
        frames = codec.encode(msg)
        back = codec.decode(frames)
        self.assertEqual(codec.encode(back), frames)
        return back

    def test_every_type_round_trips(self):
        msgs = [
            {"type": "hello", "body": {"protocol": [1], "plugin_id": "a.1", "token": "t", "pid": 5}},
            {"type": "welcome", "body": {"protocol": 1, "heartbeat_ms": 1000, "config": {"x": -3, "y": 2.5}}},
            {"type": "reject", "error": {"code": "unauthorized", "message": "no"}, "body": {}},
            {"type": "request", "id": 2**64 - 1, "method": "m" * 64, "timeout_ms": 2**32 - 1, "body": {"k": None}},
            {"type": "reply", "id": 1, "body": {"b": True, "bin": b"\x00\xff", "nested": [[{}], []]}},
            {"type": "error", "id": 0, "error": {"code": "rejected", "message": ""}, "body": {}},
            {"type": "progress", "id": 3, "body": {"bytes": 2**40}},
            {"type": "chunk", "id": 4, "body": {"offset": 0}, "data": b"abc"},
            {"type": "credit", "id": 5, "body": {"chunks": 1}},
            {"type": "cancel", "id": 6, "body": {}},
            {"type": "heartbeat", "body": {}},
            {"type": "goodbye", "body": {"reason": "ünïcode"}},
        ]
        for m in msgs:
            self.assertEqual(self.roundtrip(m), m)

    def test_reference_byte_layout(self):
        # Envelope fields in the order type, id, method, timeout_ms, error, body; body keys sorted.
        self.assertEqual(codec.encode({"type": "heartbeat", "body": {}}), [b"\x82\xa4type\xa9heartbeat\xa4body\x80"])
        env = codec.encode_envelope({"type": "request", "id": 17, "method": "list", "timeout_ms": 30000,
                                     "body": {"z": 1, "a": {"y": 2.0, "b": -1}}})
        self.assertEqual(env, b"\x85\xa4type\xa7request\xa2id\x11\xa6method\xa4list\xaatimeout_ms\xcd\x75\x30"
                              b"\xa4body\x82\xa1a\x82\xa1b\xff\xa1y\xcb\x40\x00\x00\x00\x00\x00\x00\x00\xa1z\x01")
        env = codec.encode_envelope({"type": "error", "id": 300, "error": {"message": "m", "code": "timeout"}})
        self.assertEqual(env, b"\x84\xa4type\xa5error\xa2id\xcd\x01\x2c\xa5error\x82\xa4code\xa7timeout"
                              b"\xa7message\xa1m\xa4body\x80")
        # Fields a type does not have are not sent; keys sort by their UTF-8 bytes.
        env = codec.encode_envelope({"type": "goodbye", "id": 9, "body": {"é": 1, "z": 2, "Z": 3}})
        self.assertEqual(env, b"\x82\xa4type\xa7goodbye\xa4body\x83\xa1Z\x03\xa1z\x02\xa2\xc3\xa9\x01")

    def test_integers_in_other_formats_decode(self):
        # id as int8/uint64: signedness and width of the format do not matter for non-negative values.
        for raw in (b"\xd0\x05", b"\xcf\x00\x00\x00\x00\x00\x00\x00\x05"):
            env = b"\x83\xa4type\xa6cancel\xa2id" + raw + b"\xa4body\x80"
            self.assertEqual(codec.decode([env])["id"], 5)

    def assertRejected(self, frames, fragment):
        with self.assertRaises(codec.ProtocolError) as cm:
            codec.decode(frames)
        self.assertIn(fragment, str(cm.exception))

    def test_rejections(self):
        p = msgpack.packb
        hb = {"type": "heartbeat", "body": {}}
        self.assertRejected([], "no frames")
        self.assertRejected([b""], "empty frame")
        self.assertRejected([b"\xc1"], "not valid msgpack")
        self.assertRejected([p(hb) + b"\x00"], "trailing bytes")
        self.assertRejected([p([1])], "envelope is not a map")
        self.assertRejected([b"\x82\xa4type\xa9heartbeat\x01\x80"], "map key is not a string")
        self.assertRejected([b"\x82\xa4type\xa9heartbeat\xc4\x04body\x80"], "map key is not a string")
        self.assertRejected([b"\x83\xa4type\xa9heartbeat\xa4body\x80\xa4body\x80"], "duplicate map key 'body'")
        self.assertRejected([b"\x82\xa4type\xa9heartbeat\xa4body\x81\xa1x\xd4\x01\x00"], "extension types")
        self.assertRejected([b"\x82\xa4type\xa9heartbeat\xa4body\x81\xa1x\xa2\xff\xfe"], "not valid UTF-8")
        self.assertRejected([b"\x82\xa4type\xa9heartbeat\xa4body\x81\xa2\xc3\x28\xc0"], "not valid UTF-8")
        self.assertRejected([b"\x82\xa4type\xa9heartbeat\xa4body\x81\xa1x\xd6\xff\x00\x00\x00\x00"], "extension types")
        self.assertRejected([p({"body": {}})], "any message lacks field 'type'")
        self.assertRejected([p({"type": 1})], "any message field 'type' is not a string")
        self.assertRejected([p({"type": "hullo"})], "unknown message type 'hullo'")
        self.assertRejected([p({"type": "heartbeat", "body": []})], "heartbeat message body is not a map")
        self.assertRejected([p({"type": "reply", "body": {}})], "reply message lacks field 'id'")
        self.assertRejected([p({"type": "reply", "id": 0})], "reply message has id 0")
        self.assertRejected([p({"type": "reply", "id": -1})], "reply message field 'id' is not an unsigned integer")
        self.assertRejected([p({"type": "reply", "id": 1.0})], "reply message field 'id' is not an unsigned integer")
        self.assertRejected([p({"type": "reply", "id": True})], "reply message field 'id' is not an unsigned integer")
        self.assertRejected([p({"type": "request", "id": 1, "timeout_ms": 1})], "request message lacks field 'method'")
        self.assertRejected([p({"type": "request", "id": 1, "method": "", "timeout_ms": 1})], "empty or longer than 64")
        self.assertRejected([p({"type": "request", "id": 1, "method": "m" * 65, "timeout_ms": 1})], "empty or longer")
        self.assertRejected([p({"type": "request", "id": 1, "method": "m", "timeout_ms": 2**32})],
                            "request message field 'timeout_ms' is not an unsigned integer <= 4294967295")
        self.assertRejected([p({"type": "request", "id": 1, "method": "m"})], "lacks field 'timeout_ms'")
        self.assertRejected([p({"type": "error", "id": 1})], "error message lacks field 'error'")
        self.assertRejected([p({"type": "error", "id": 1, "error": "x"})], "field 'error' is not a map")
        self.assertRejected([p({"type": "reject", "error": {"code": "oops", "message": ""}})], "unknown error code 'oops'")
        self.assertRejected([p({"type": "reject", "error": {"code": "internal"}})], "error message lacks field 'message'")
        self.assertRejected([p({"type": "chunk", "id": 1, "body": {}})], "chunk message lacks its data frame")
        self.assertRejected([p({"type": "chunk", "id": 1, "body": {}}), b"x" * ((8 << 20) + 1)], "8 MiB")
        self.assertRejected([p(hb), b"x"], "heartbeat message carries an unexpected data frame")
        self.assertRejected([p(hb), b"x", b"y"], "message has 3 frames, at most 2 allowed")
        self.assertRejected([p({"type": "heartbeat", "body": {}, "pad": "x" * (1 << 20)})], "exceeds the 1 MiB limit")
        self.assertRejected([b"\x82\xa4type\xa9heartbeat\xa4body\xdd\x00\x01\x00\x01" + b"\xc0" * 65537], "not valid msgpack")

    def test_limits_at_the_edge(self):
        # Containers nest at most 32 levels, the envelope being level 1 and empty containers
        # counting too, as in the reference decoder (msgpack-c's depth limit).
        def nested(levels, leaf):
            v = leaf
            for _ in range(levels):
                v = [v]
            return v

        for leaf in (1, []):
            ok = {"type": "heartbeat", "body": {"x": nested(29, leaf)}}  # levels 3..31, leaf at 32
            self.assertEqual(codec.decode([msgpack.packb(ok)])["body"]["x"], nested(29, leaf))
            self.assertEqual(codec.decode(codec.encode(ok)), ok)
        too_deep = {"type": "heartbeat", "body": {"x": nested(30, [])}}
        self.assertRejected([msgpack.packb(too_deep)], "depth size overflow")
        with self.assertRaises(ValueError):
            codec.encode(too_deep)
        big = {"type": "reply", "id": 1, "body": {"a": [0] * 65536}}
        self.assertEqual(len(codec.decode(codec.encode(big))["body"]["a"]), 65536)
        self.assertRejected([msgpack.packb({"type": "reply", "id": 1, "body": {"a": [0] * 65537}})], "array size overflow")
        exact = {"type": "heartbeat", "body": {}}
        pad = (1 << 20) - len(codec.encode_envelope({"type": "heartbeat", "body": {"p": ""}})) - 4
        exact["body"]["p"] = "x" * pad
        env = codec.encode_envelope(exact)
        self.assertEqual(len(env), 1 << 20)
        self.assertEqual(codec.decode([env])["body"]["p"], "x" * pad)
        exact["body"]["p"] += "x"
        with self.assertRaises(ValueError):
            codec.encode_envelope(exact)

    def test_encoder_refuses_what_the_protocol_does_not_allow(self):
        for bad in ({"type": "nope"}, {"type": "reply", "id": -1}, {"type": "reply", "id": 2**64},
                    {"type": "request", "id": 1, "method": "m", "timeout_ms": 2**32},
                    {"type": "error", "id": 1, "error": {"code": "oops", "message": ""}},
                    {"type": "reply", "id": 1, "body": {1: 2}}, {"type": "reply", "id": 1, "body": {"s": {1}}},
                    {"type": "reply", "id": 1, "body": []}, {"type": "chunk", "id": 1, "body": {}},
                    {"type": "heartbeat", "body": {}, "data": b"x"}, {"type": "goodbye", "body": {"reason": "\udcff"}}):
            with self.assertRaises((TypeError, ValueError), msg=bad):
                codec.encode(bad)


class NamesTest(unittest.TestCase):
    def test_names(self):
        self.assertIsNone(mp.check_model_name("acme/llm-7b_v1.2"))
        self.assertEqual(mp.check_model_name(""), "model name is empty")
        self.assertEqual(mp.check_model_name("a//b"), "model name has an empty path segment")
        self.assertEqual(mp.check_model_name("a/.b"), "model name has a segment starting with '.'")
        self.assertEqual(mp.check_model_name("a b"), "model name contains the character '\\x20'")
        self.assertEqual(mp.check_model_name("a:b"), "model name contains the character ':'")
        self.assertEqual(mp.check_model_name("/".join("a" * 9)), "model name has more than 8 segments")
        self.assertEqual(mp.check_model_name("é"), "model name contains the character '\\xc3'")
        self.assertEqual(mp.check_file_name("/etc/passwd"), "file name is an absolute path")
        self.assertIsNone(mp.check_file_name("sub/dir/model.safetensors"))
        self.assertIsNone(mp.check_plugin_name("python-example"))
        self.assertIsNotNone(mp.check_plugin_name("Python"))

    def test_versions(self):
        for v in ("1.0.0", "0.0.1-alpha.1+build.007", "10.20.30-rc.1"):
            self.assertIsNone(mp.check_version(v), v)
        for v in ("1.0", "01.0.0", "1.0.0-01", "1.0.0+", "v1.0.0", "1.0.0-a..b", "1" * 65):
            self.assertIsNotNone(mp.check_version(v), v)
        order = ["1.0.0-alpha", "1.0.0-alpha.1", "1.0.0-alpha.beta", "1.0.0-beta", "1.0.0-beta.2",
                 "1.0.0-beta.11", "1.0.0-rc.1", "1.0.0", "1.0.1", "1.10.0", "2.0.0"]
        self.assertEqual(sorted(reversed(order), key=mp.SemVer.parse), order)
        self.assertEqual(mp.SemVer.parse("1.0.0+a"), mp.SemVer.parse("1.0.0+b"))

    def test_glob(self):
        self.assertTrue(mp.glob_match("example/*", "example/a/b"))
        self.assertFalse(mp.glob_match("example/*", "examples/x"))
        self.assertTrue(mp.glob_match("a?c", "abc"))
        self.assertTrue(mp.glob_match("*", ""))


if __name__ == "__main__":
    unittest.main()
