#!/usr/bin/python3
"""python-example: a modelzoo registry plugin written in Python with the Python SDK.

Serves the models of a directory tree laid out like the built-in local-file plugin's:

    <root>/<model name>/<version>/<files...>     e.g. root/acme/llm/1.0.0/weights.bin

A model name may contain '/' (up to 8 segments); version directories are those named by a
semantic version; files may sit in subdirectories. Files whose names are not valid bus file
names (dotfiles, for instance) and symbolic links leading outside the root are ignored.
SHA-256 hashes are computed on first use and cached by (path, size, mtime, inode).

Configuration (the source's `config:`):

    root: /path/to/models            required (read live: a missing directory means no models yet)
    description: "..."               optional, reported for every model

Test knobs, for the integration tests' failover and restart cases:

    fail_download_after_bytes: N     a download sends N bytes, then fails with `unavailable`
    crash_after_bytes: N             a download sends N bytes, then the process exits (status 1)
    throttle_bytes_per_second: N     downloads are paced to N bytes per second
"""

import os
import sys
import threading
import time

try:
    import modelzoo_plugin as mp
except ImportError:  # running from the source tree: the SDK is at <repo>/plugin-sdk/python
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.realpath(__file__)), "..", "..", "plugin-sdk", "python"))
    import modelzoo_plugin as mp

NAME = "python-example"
VERSION = "0.1.0"


def _knob(config, key):
    v = config.get(key)
    if v is None:
        return None
    if type(v) is not int or v < 0:
        raise ValueError("'%s' must be a non-negative integer" % key)
    return v


class DirectoryRegistry(mp.Registry):
    def __init__(self):
        self.root = None
        self.description = ""
        self.fail_after = self.crash_after = self.throttle = None
        self._hashes = {}  # (path, size, mtime_ns, inode) -> sha256
        self._lock = threading.Lock()

    def configure(self, config):
        root = config.get("root")
        if not isinstance(root, str) or not root:
            raise ValueError("'root' (a directory of <model>/<version>/<files>) is required")
        self.root = os.path.realpath(root)
        if not os.path.isdir(self.root):  # the tree is read live: models may appear later
            mp.log("warn", "%s: root '%s' is not a directory (yet): no models" % (NAME, root))
        description = config.get("description", "")
        self.description = description if isinstance(description, str) else str(description)
        self.fail_after = _knob(config, "fail_download_after_bytes")
        self.crash_after = _knob(config, "crash_after_bytes")
        self.throttle = _knob(config, "throttle_bytes_per_second")
        if self.throttle == 0:
            raise ValueError("'throttle_bytes_per_second' must be positive")
        mp.log("info", "%s: serving models from %s" % (NAME, self.root))

    # -- the tree --------------------------------------------------------------------------------

    def _inside_root(self, path):
        real = os.path.realpath(path)
        return real == self.root or real.startswith(self.root + os.sep)

    def _versions(self, name):
        """{version string: directory} of a model (names were checked by the SDK)."""
        if not os.path.isdir(self.root):
            return {}
        model_dir = os.path.join(self.root, *name.split("/"))
        if not os.path.isdir(model_dir) or not self._inside_root(model_dir):
            return {}
        out = {}
        for entry in os.listdir(model_dir):
            path = os.path.join(model_dir, entry)
            if mp.check_version(entry) is None and os.path.isdir(path) and self._inside_root(path):
                out[entry] = path
        return out

    @staticmethod
    def _newest_first(versions):
        return sorted(versions, key=mp.SemVer.parse, reverse=True)

    def _latest(self, versions):
        releases = [v for v in versions if not mp.SemVer.parse(v).prerelease]
        return self._newest_first(releases or versions)[0]

    def _files(self, version_dir):
        """[(file name, path, stat)] of a version directory, sorted by name."""
        out = []
        for dirpath, dirnames, filenames in os.walk(version_dir, followlinks=False):
            dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
            for f in filenames:
                path = os.path.join(dirpath, f)
                name = os.path.relpath(path, version_dir).replace(os.sep, "/")
                if mp.check_file_name(name) is not None or not self._inside_root(path):
                    continue
                try:
                    st = os.stat(path)
                except OSError:
                    continue
                if os.path.isfile(path):
                    out.append((name, path, st))
        out.sort(key=lambda t: t[0])
        return out

    def _sha256(self, path, st):
        key = (path, st.st_size, st.st_mtime_ns, st.st_ino)
        with self._lock:
            known = self._hashes.get(key)
        if known is None:
            known = mp.sha256_file(path)
            with self._lock:
                self._hashes[key] = known
        return known

    def _find(self, name, version):
        versions = self._versions(name)
        if not versions:
            raise mp.NotFound("%s: no model '%s'" % (NAME, name))
        if not version:
            version = self._latest(versions)
        elif version not in versions:
            raise mp.NotFound("%s: no version '%s' of '%s'" % (NAME, version, name))
        return version, versions[version]

    # -- the registry methods ----------------------------------------------------------------

    def metadata(self, name, version):
        version, directory = self._find(name, version)
        files = [mp.FileInfo(n, st.st_size, self._sha256(p, st)) for n, p, st in self._files(directory)]
        return mp.ModelMetadata(name=name, version=version, description=self.description, files=files)

    def exists(self, name, version):
        try:
            self._find(name, version)
            return True
        except mp.NotFound:
            return False

    def list(self):
        models = []
        if not os.path.isdir(self.root):
            return models
        for dirpath, dirnames, _ in os.walk(self.root):
            rel = os.path.relpath(dirpath, self.root).replace(os.sep, "/")
            versions = [d for d in dirnames if mp.check_version(d) is None]
            # Version directories hold files, not models: do not descend into them.
            dirnames[:] = sorted(d for d in dirnames if d not in versions and not d.startswith("."))
            if rel.count("/") >= 7:
                dirnames[:] = []
            if rel != "." and versions and mp.check_model_name(rel) is None:
                models.append(mp.ModelSummary(rel, self._newest_first(versions), self.description))
        return models

    def download(self, req, sink):
        _, directory = self._find(req.name, req.version)
        path = os.path.join(directory, *req.file.split("/"))
        if not os.path.isfile(path) or not self._inside_root(path):
            raise mp.NotFound("%s: no file '%s' in '%s:%s'" % (NAME, req.file, req.name, req.version))
        with open(path, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            if req.offset > size:
                raise mp.BadRequest("offset %d is past the end of '%s' (%d bytes)" % (req.offset, req.file, size))
            f.seek(req.offset)
            started = time.monotonic()
            sent = 0
            while True:
                want = sink.chunk_size
                for limit in (self.fail_after, self.crash_after):
                    if limit is not None:
                        want = min(want, limit - sent)
                block = f.read(want) if want > 0 else b""
                if block:
                    sink.write(block)
                    sent += len(block)
                    if self.throttle:
                        delay = started + sent / self.throttle - time.monotonic()
                        if delay > 0:
                            time.sleep(delay)
                    continue
                if f.tell() >= size:
                    return  # the whole file was sent
                if self.crash_after is not None and sent >= self.crash_after:
                    mp.log("warn", "%s: crash_after_bytes is set: exiting after %d bytes" % (NAME, sent))
                    time.sleep(0.2)  # let the main loop pass the chunks on first
                    os._exit(1)
                if self.fail_after is not None and sent >= self.fail_after:
                    raise mp.Unavailable("%s: simulated failure after %d bytes" % (NAME, sent))
                raise mp.Internal("%s: '%s' ended early (%d of %d bytes)" % (NAME, req.file, f.tell(), size))


if __name__ == "__main__":
    sys.exit(mp.run(DirectoryRegistry(), name=NAME, version=VERSION))
