#!/usr/bin/python3
"""A loopback stand-in for the Hugging Face Hub, speaking the shapes of its documented API
(https://huggingface.co/docs/hub/api) that modelzoo's `huggingface` plugin and the official
@huggingface/hub client use. Test tool only (tests/integration/huggingface_test.cc,
tests/hfhub/js_client_test.sh, bench/hf_bench.sh); never part of the product.

Repos are directories: ROOT/<org>/<name>/<files...>; each is one commit on branch `main` whose
sha is derived from its content (`main` and `HEAD` name it) (sha1 of the sorted (path, git blob id) list), also reachable
as tag `v1` if ROOT/<org>/<name>.tag holds a tag name. Files of at least --lfs-min-bytes are
LFS files (lfs.sha256, resolve answers 302 to the CDN port); smaller ones are git files (blobId,
served directly).

  GET  /api/models?limit=&author=&cursor=              list, cursor-paged with a Link header
  GET  /api/models/<repo>[/revision/<rev>][?blobs=true] model info with siblings
  GET  /api/models/<repo>/tree/<rev>[/<path>]           tree entries (type, oid, size, path, lfs)
  GET|HEAD /<repo>/resolve/<rev>/<file>                 bytes (Range), or 302 to the CDN
  GET|HEAD CDN /<repo>/<commit>/<file>                  bytes (Range)

Test knobs: --max-page N (list pages of at most N, then a Link to the next), --private REPO=TOKEN (401 without the token), --gated REPO=TOKEN (403 with another
token or none), --fail-first N --fail-status S --retry-after SECS (first N API/resolve requests
fail), --rate-limit BYTES_PER_SEC (per connection), --corrupt FILE (the CDN flips a byte of
files of that name), --die-after-bytes N (the process exits after N body bytes in all),
--cdn-log FILE (one line per CDN request: "auth" or "noauth", then the path).
"""
import argparse
import hashlib
import json
import os
import re
import socketserver
import sys
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

ARGS = None
LOCK = threading.Lock()
STATE = {"failed": 0, "sent": 0}


def git_blob_id(data):
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def file_sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


_repo_cache = {}


def repo_info(repo):
    """{'sha', 'files': {path: {'size', 'blob', 'sha256' or None}}} or None."""
    d = os.path.join(ARGS.root, repo)
    if repo.count("/") != 1 or ".." in repo or not os.path.isdir(d):
        return None
    files = {}
    for dirpath, _, names in os.walk(d):
        for n in names:
            full = os.path.join(dirpath, n)
            rel = os.path.relpath(full, d)
            st = os.stat(full)
            key = (full, st.st_size, st.st_mtime_ns)
            if key not in _repo_cache:
                if st.st_size >= ARGS.lfs_min_bytes:
                    sha = file_sha256(full)
                    pointer = ("version https://git-lfs.github.com/spec/v1\noid sha256:%s\nsize %d\n" % (sha, st.st_size)).encode()
                    _repo_cache[key] = {"size": st.st_size, "blob": git_blob_id(pointer), "sha256": sha,
                                        "pointer": len(pointer)}
                else:
                    with open(full, "rb") as f:
                        _repo_cache[key] = {"size": st.st_size, "blob": git_blob_id(f.read()), "sha256": None}
            files[rel] = _repo_cache[key]
    commit = hashlib.sha1("".join("%s %s\n" % (p, files[p]["blob"]) for p in sorted(files)).encode()).hexdigest()
    tag = None
    if os.path.isfile(d + ".tag"):
        tag = open(d + ".tag").read().strip()
    return {"sha": commit, "files": files, "tag": tag}


def resolve_rev(info, rev):
    rev = urllib.parse.unquote(rev)
    return rev in ("main", "HEAD", info["sha"]) or (info["tag"] is not None and rev == info["tag"])


def token_of(headers):
    a = headers.get("Authorization", "")
    return a[7:] if a.startswith("Bearer ") else None


def access(repo, headers):
    """None when allowed, else (status, error code, message)."""
    tok = token_of(headers)
    for spec, status in ((ARGS.private, 401), (ARGS.gated, 403)):
        for s in spec:
            r, _, want = s.partition("=")
            if r == repo and tok != want:
                if status == 401:
                    return 401, "RepoNotFound", "Repository Not Found for url: %s. Invalid credentials." % repo
                return 403, "GatedRepo", "Access to model %s is restricted. You must have access to it and be authenticated to access it." % repo
    return None


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "fake-hub/1"

    def log_message(self, fmt, *args):
        sys.stderr.write("%s %s\n" % (self.server.label, fmt % args))

    def send_json(self, status, obj, extra=None):
        body = json.dumps(obj).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        for k, v in (extra or {}).items():
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def error(self, status, code, message, extra=None):
        h = {"X-Error-Code": code, "X-Error-Message": message}
        h.update(extra or {})
        self.send_json(status, {"error": message}, h)

    def do_HEAD(self):
        self.do_GET()

    def do_GET(self):
        try:
            if self.server.label == "cdn":
                return self.cdn()
            return self.hub()
        except (BrokenPipeError, ConnectionResetError):
            pass

    # -- the hub ---------------------------------------------------------------------------
    def hub(self):
        url = urllib.parse.urlsplit(self.path)
        q = urllib.parse.parse_qs(url.query)
        path = url.path
        with LOCK:
            fail = STATE["failed"] < ARGS.fail_first
            if fail:
                STATE["failed"] += 1
        if fail:
            return self.error(ARGS.fail_status, "Overloaded", "try again later", {"Retry-After": str(ARGS.retry_after)})
        if path == "/api/models":
            return self.list_models(q)
        m = re.match(r"^/api/models/([^/]+/[^/]+)(?:/(revision|tree)/([^/]+)(?:/(.*))?)?$", path)
        if m:
            repo, kind, rev, sub = m.group(1), m.group(2), m.group(3) or "main", m.group(4)
            info = self.lookup(repo, rev)
            if info is None:
                return
            if kind == "tree":
                return self.tree(repo, info, urllib.parse.unquote(sub or ""), q)
            return self.send_json(200, self.model_json(repo, info, q.get("blobs", ["false"])[0] == "true"))
        m = re.match(r"^/([^/]+/[^/]+)/resolve/([^/]+)/(.+)$", path)
        if m:
            repo, rev, file = m.group(1), m.group(2), urllib.parse.unquote(m.group(3))
            info = self.lookup(repo, rev)
            if info is None:
                return
            f = info["files"].get(file)
            if f is None:
                return self.error(404, "EntryNotFound", "Entry not found", {"X-Repo-Commit": info["sha"]})
            common = {"X-Repo-Commit": info["sha"], "Accept-Ranges": "bytes"}
            if f["sha256"]:
                loc = "http://127.0.0.1:%d/%s/%s/%s" % (self.server.cdn_port, repo, info["sha"], urllib.parse.quote(file))
                common.update({"Location": loc, "X-Linked-Etag": '"%s"' % f["sha256"], "X-Linked-Size": str(f["size"]),
                               "ETag": '"%s"' % f["sha256"], "Content-Length": "0"})
                self.send_response(302)
                for k, v in common.items():
                    self.send_header(k, v)
                self.end_headers()
                return
            return self.send_file(os.path.join(ARGS.root, repo, file), f["size"], '"%s"' % f["blob"], common)
        return self.error(404, "NotFound", "no such endpoint: " + path)

    def lookup(self, repo, rev):
        """The repo's info when it exists, may be read and has `rev`; else answers the error."""
        info = repo_info(repo)
        if info is None:
            # as the hub: a request without a token is not told whether the repo exists
            self.error(404 if token_of(self.headers) else 401, "RepoNotFound", "Repository not found")
            return None
        denied = access(repo, self.headers)
        if denied:
            self.error(*denied)
            return None
        if not resolve_rev(info, rev):
            self.error(404, "RevisionNotFound", "Invalid rev id: " + rev)
            return None
        return info

    def model_json(self, repo, info, blobs):
        siblings = []
        for p in sorted(info["files"]):
            f = info["files"][p]
            s = {"rfilename": p}
            if blobs:
                s["blobId"] = f["blob"]
                s["size"] = f["size"]
                if f["sha256"]:
                    s["lfs"] = {"sha256": f["sha256"], "size": f["size"], "pointerSize": f["pointer"]}
            siblings.append(s)
        private = any(s.partition("=")[0] == repo for s in ARGS.private)
        gated = any(s.partition("=")[0] == repo for s in ARGS.gated)
        return {"_id": info["sha"][:24], "id": repo, "modelId": repo, "author": repo.split("/")[0], "sha": info["sha"],
                "lastModified": "2024-01-01T00:00:00.000Z", "private": private, "gated": "manual" if gated else False,
                "disabled": False, "downloads": 0, "likes": 0, "library_name": "transformers",
                "tags": ["safetensors", "license:apache-2.0"], "pipeline_tag": "text-generation",
                "createdAt": "2024-01-01T00:00:00.000Z", "siblings": siblings}

    def tree(self, repo, info, sub, q):
        recursive = q.get("recursive", ["false"])[0] == "true"
        prefix = sub.strip("/") + "/" if sub.strip("/") else ""
        out, dirs = [], set()
        for p in sorted(info["files"]):
            if not p.startswith(prefix):
                continue
            rest = p[len(prefix):]
            if "/" in rest and not recursive:
                d = prefix + rest.split("/")[0]
                if d not in dirs:
                    dirs.add(d)
                    out.append({"type": "directory", "oid": hashlib.sha1(d.encode()).hexdigest(), "size": 0, "path": d})
                continue
            f = info["files"][p]
            e = {"type": "file", "oid": f["blob"], "size": f["size"], "path": p}
            if f["sha256"]:
                e["lfs"] = {"oid": f["sha256"], "size": f["size"], "pointerSize": f["pointer"]}
            out.append(e)
        return self.send_json(200, out)

    def list_models(self, q):
        repos = []
        for org in sorted(os.listdir(ARGS.root)):
            if os.path.isdir(os.path.join(ARGS.root, org)):
                for name in sorted(os.listdir(os.path.join(ARGS.root, org))):
                    if os.path.isdir(os.path.join(ARGS.root, org, name)):
                        repos.append(org + "/" + name)
        if "author" in q:
            repos = [r for r in repos if r.split("/")[0] == q["author"][0]]
        if "search" in q:
            repos = [r for r in repos if q["search"][0] in r]
        limit = min(int(q.get("limit", ["1000"])[0]), ARGS.max_page)
        start = int(q.get("cursor", ["0"])[0])
        page = repos[start:start + limit]
        extra = {}
        if start + limit < len(repos):
            nq = {k: v[0] for k, v in q.items()}
            nq["cursor"] = str(start + limit)
            extra["Link"] = '<http://127.0.0.1:%d/api/models?%s>; rel="next"' % (self.server.server_address[1],
                                                                               urllib.parse.urlencode(nq))
        out = []
        for r in page:
            info = repo_info(r)
            out.append({"_id": info["sha"][:24], "id": r, "modelId": r, "likes": 0, "downloads": 0, "private": False,
                        "tags": [], "createdAt": "2024-01-01T00:00:00.000Z", "sha": info["sha"]})
        return self.send_json(200, out, extra)

    # -- the CDN ---------------------------------------------------------------------------
    def cdn(self):
        path = urllib.parse.urlsplit(self.path).path
        if ARGS.cdn_log:
            with LOCK, open(ARGS.cdn_log, "a") as log:
                log.write("%s %s\n" % ("auth" if self.headers.get("Authorization") else "noauth", path))
        m = re.match(r"^/([^/]+/[^/]+)/([0-9a-f]{40})/(.+)$", path)
        info = repo_info(m.group(1)) if m else None
        file = urllib.parse.unquote(m.group(3)) if m else None
        if not info or info["sha"] != m.group(2) or file not in info["files"]:
            return self.error(404, "NotFound", "no such object")
        f = info["files"][file]
        self.send_file(os.path.join(ARGS.root, m.group(1), file), f["size"], '"%s"' % f["sha256"], {"Accept-Ranges": "bytes"},
                       corrupt=os.path.basename(file) in ARGS.corrupt)

    # -- bytes ------------------------------------------------------------------------------
    def send_file(self, full, size, etag, headers, corrupt=False):
        start, end = 0, size - 1
        rng = self.headers.get("Range")
        status = 200
        if rng:
            m = re.match(r"^bytes=(\d+)-(\d*)$", rng.strip())
            if not m:
                return self.error(416, "BadRange", "bad range", {"Content-Range": "bytes */%d" % size})
            start = int(m.group(1))
            if m.group(2):
                end = min(int(m.group(2)), size - 1)
            if start >= size:
                return self.error(416, "BadRange", "range not satisfiable", {"Content-Range": "bytes */%d" % size})
            status = 206
        self.send_response(status)
        for k, v in headers.items():
            self.send_header(k, v)
        self.send_header("ETag", etag)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(end - start + 1))
        if status == 206:
            self.send_header("Content-Range", "bytes %d-%d/%d" % (start, end, size))
        self.end_headers()
        if self.command == "HEAD":
            return
        block = 64 * 1024
        t0 = time.monotonic()
        sent = 0
        with open(full, "rb") as f:
            f.seek(start)
            left = end - start + 1
            pos = start
            while left > 0:
                data = f.read(min(block, left))
                if not data:
                    break
                if corrupt and pos <= size // 2 < pos + len(data):
                    i = size // 2 - pos
                    data = data[:i] + bytes([data[i] ^ 0xFF]) + data[i + 1:]
                if ARGS.die_after_bytes:
                    with LOCK:
                        room = ARGS.die_after_bytes - STATE["sent"]
                        STATE["sent"] += len(data)
                    if room <= len(data):
                        self.wfile.write(data[:max(room, 0)])
                        self.wfile.flush()
                        os._exit(0)
                self.wfile.write(data)
                left -= len(data)
                pos += len(data)
                sent += len(data)
                if ARGS.rate_limit:
                    ahead = sent / ARGS.rate_limit - (time.monotonic() - t0)
                    if ahead > 0:
                        time.sleep(ahead)


class Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 64


def main():
    global ARGS
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--root", required=True)
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--cdn-port", type=int, default=0)
    p.add_argument("--port-file", required=True, help="written as '<hub port> <cdn port>' once both listen")
    p.add_argument("--lfs-min-bytes", type=int, default=65536)
    p.add_argument("--private", action="append", default=[])
    p.add_argument("--gated", action="append", default=[])
    p.add_argument("--fail-first", type=int, default=0)
    p.add_argument("--fail-status", type=int, default=503)
    p.add_argument("--retry-after", type=int, default=0)
    p.add_argument("--rate-limit", type=int, default=0)
    p.add_argument("--corrupt", action="append", default=[])
    p.add_argument("--die-after-bytes", type=int, default=0)
    p.add_argument("--cdn-log", default="")
    p.add_argument("--max-page", type=int, default=1000, help="at most this many models per /api/models page")
    ARGS = p.parse_args()
    cdn = Server(("127.0.0.1", ARGS.cdn_port), Handler)
    cdn.label = "cdn"
    hub = Server(("127.0.0.1", ARGS.port), Handler)
    hub.label = "hub"
    hub.cdn_port = cdn.server_address[1]
    threading.Thread(target=cdn.serve_forever, daemon=True).start()
    tmp = ARGS.port_file + ".tmp"
    with open(tmp, "w") as f:
        f.write("%d %d\n" % (hub.server_address[1], cdn.server_address[1]))
    os.rename(tmp, ARGS.port_file)
    hub.serve_forever()


if __name__ == "__main__":
    main()
