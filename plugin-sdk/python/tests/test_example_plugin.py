"""The example registry plugins/python-example/plugin.py and extension.py against a fake daemon."""

import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import unittest

from fake_daemon import SDK_DIR, FakeDaemon

SOURCE_DIR = os.environ.get("MODELZOO_SOURCE_DIR") or os.path.dirname(os.path.dirname(SDK_DIR))
EXAMPLE = os.path.join(SOURCE_DIR, "plugins", "python-example")


@unittest.skipUnless(os.path.exists(os.path.join(EXAMPLE, "plugin.py")), "no plugins/python-example")
class ExamplePluginTest(unittest.TestCase):
    def setUp(self):
        self.d = FakeDaemon()
        self.root = tempfile.mkdtemp(prefix="mzpy-models-")
        self.procs = []

    def tearDown(self):
        for p in self.procs:
            if p.poll() is None:
                p.kill()
            p.wait()
            p.stderr.close()
        self.d.close()
        shutil.rmtree(self.root, ignore_errors=True)

    def put(self, rel, data):
        path = os.path.join(self.root, *rel.split("/"))
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as f:
            f.write(data)
        return path

    def start(self, script="plugin.py", config=None):
        # The SDK is found relative to the script: PYTHONPATH is not needed.
        env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
        env.update(self.d.env())
        p = subprocess.Popen(["/usr/bin/python3", os.path.join(EXAMPLE, script)], env=env, cwd=EXAMPLE,
                             stderr=subprocess.PIPE)
        self.procs.append(p)
        hello = self.d.welcome(config=config if config is not None else {"root": self.root})
        return p, hello

    def stop(self, p):
        self.d.send({"type": "goodbye", "body": {}})
        self.assertEqual(p.wait(5), 0)

    def download(self, mid, body):
        body = dict(body, credit=16, chunk_size=4096)
        self.d.request(mid, "download", body)
        data = bytearray()
        while True:
            m = self.d.recv(5)
            self.assertIsNotNone(m)
            if m["type"] != "chunk":
                return bytes(data), m
            self.assertEqual(m["body"]["offset"], body.get("offset", 0) + len(data))
            data += m["data"]
            self.d.send({"type": "credit", "id": mid, "body": {"chunks": 1}})

    def test_serves_a_directory_tree(self):
        weights = os.urandom(50000)
        self.put("acme/llm/1.0.0/weights.bin", weights)
        self.put("acme/llm/1.0.0/tok/vocab.txt", b"a b c\n")
        self.put("acme/llm/1.0.0/.cache", b"ignored")
        self.put("acme/llm/1.1.0-rc.1/weights.bin", b"rc")
        self.put("acme/llm/0.1.0/weights.bin", b"old")
        self.put("solo/2.0.0/x.bin", b"x")
        self.put("notes/readme.txt", b"not a model")
        p, hello = self.start()
        self.assertEqual((hello["body"]["name"], hello["body"]["version"]), ("python-example", "0.1.0"))
        meta = self.d.call(1, "metadata", {"name": "acme/llm"})["body"]
        self.assertEqual(meta["version"], "1.0.0")
        self.assertEqual(meta["files"], [
            {"name": "tok/vocab.txt", "size": 6, "sha256": hashlib.sha256(b"a b c\n").hexdigest()},
            {"name": "weights.bin", "size": 50000, "sha256": hashlib.sha256(weights).hexdigest()}])
        self.assertEqual(self.d.call(2, "metadata", {"name": "acme/llm", "version": "1.1.0-rc.1"})["body"]["version"],
                         "1.1.0-rc.1")
        r = self.d.call(3, "metadata", {"name": "acme/llm", "version": "9.9.9"})
        self.assertEqual(r["error"]["code"], "not_found")
        self.assertEqual(self.d.call(4, "metadata", {"name": "notes"})["error"]["code"], "not_found")
        self.assertEqual(self.d.call(5, "exists", {"name": "solo"})["body"], {"exists": True})
        self.assertEqual(self.d.call(6, "exists", {"name": "acme/nope"})["body"], {"exists": False})
        models = self.d.call(7, "list")["body"]["models"]
        self.assertEqual([(m["name"], m["versions"]) for m in models],
                         [("acme/llm", ["1.1.0-rc.1", "1.0.0", "0.1.0"]), ("solo", ["2.0.0"])])
        data, final = self.download(8, {"name": "acme/llm", "version": "1.0.0", "file": "weights.bin"})
        self.assertEqual(data, weights)
        self.assertEqual(final["body"], {"offset": 0, "size": 50000})
        data, final = self.download(9, {"name": "acme/llm", "version": "1.0.0", "file": "weights.bin", "offset": 40000})
        self.assertEqual(data, weights[40000:])
        r = self.d.call(10, "download", {"name": "acme/llm", "version": "1.0.0", "file": ".cache"})
        self.assertEqual(r["error"]["code"], "bad_request")
        r = self.d.call(11, "download", {"name": "acme/llm", "version": "1.0.0", "file": "nope.bin"})
        self.assertEqual(r["error"]["code"], "not_found")
        self.stop(p)

    def test_symlinks_out_of_the_root_are_ignored(self):
        outside = tempfile.NamedTemporaryFile(delete=False)
        outside.write(b"secret")
        outside.close()
        self.addCleanup(os.unlink, outside.name)
        self.put("m/1.0.0/ok.bin", b"ok")
        os.symlink(outside.name, os.path.join(self.root, "m", "1.0.0", "leak.bin"))
        p, _ = self.start()
        meta = self.d.call(1, "metadata", {"name": "m"})["body"]
        self.assertEqual([f["name"] for f in meta["files"]], ["ok.bin"])
        r = self.d.call(2, "download", {"name": "m", "version": "1.0.0", "file": "leak.bin"})
        self.assertEqual(r["error"]["code"], "not_found")
        self.stop(p)

    def test_fail_and_crash_knobs(self):
        self.put("m/1.0.0/w.bin", b"w" * 20000)
        p, _ = self.start(config={"root": self.root, "fail_download_after_bytes": 10000})
        data, final = self.download(1, {"name": "m", "version": "1.0.0", "file": "w.bin"})
        self.assertEqual(len(data), 10000)
        self.assertEqual(final["error"], {"code": "unavailable",
                                          "message": "python-example: simulated failure after 10000 bytes"})
        self.stop(p)

    def test_crash_knob_exits_1(self):
        self.put("m/1.0.0/w.bin", b"w" * 20000)
        p, _ = self.start(config={"root": self.root, "crash_after_bytes": 8192})
        self.d.request(1, "download", {"name": "m", "version": "1.0.0", "file": "w.bin", "credit": 16,
                                       "chunk_size": 4096})
        self.assertEqual(p.wait(5), 1)

    def test_configuration_without_root_is_rejected(self):
        p, _ = self.start(config={})
        bye = self.d.recv(5)
        self.assertEqual(bye["type"], "goodbye")
        self.assertIn("configuration rejected: 'root'", bye["body"]["reason"])
        self.assertEqual(p.wait(5), 1)

    def test_policy_extension(self):
        p, hello = self.start("extension.py", config={"deny": ["bad/*"], "reason": "no", "max_file_bytes": 10})
        self.assertEqual((hello["body"]["kind"], hello["body"]["points"]), ("extension", ["post-download"]))
        r = self.d.call(1, "hook", {"point": "post-download", "name": "bad/m", "version": "1.0.0", "files": []})
        self.assertEqual(r["body"], {"action": "reject", "reason": "no (bad/m matches 'bad/*')"})
        r = self.d.call(2, "hook", {"point": "post-download", "name": "ok/m", "version": "1.0.0",
                                    "files": [{"name": "w", "size": 11, "path": "/x"}]})
        self.assertEqual(r["body"], {"action": "reject", "reason": "w: 11 bytes, more than 10"})
        r = self.d.call(3, "hook", {"point": "post-download", "name": "ok/m", "version": "1.0.0",
                                    "files": [{"name": "w", "size": 10, "path": "/x"}]})
        self.assertEqual(r["body"], {"action": "continue", "message": "1 file(s) checked"})
        self.stop(p)


if __name__ == "__main__":
    unittest.main()
