#!/usr/bin/python3
"""A loopback stand-in for Google Cloud Storage's JSON API and Google's token endpoints, for the
gcs plugin's tests. Not a product part. It speaks the documented shapes the plugin uses
(cloud.google.com/storage/docs/json_api): objects.list (prefix, delimiter, maxResults,
pageToken), objects.get (the resource, or the bytes with alt=media and Range), objects.insert
(uploadType=media), objects.patch (metadata merged, ifMetagenerationMatch). The service
account's JWT is verified with Google's own library (Debian's python3-google-auth:
google.auth.jwt.decode, signature, audience and expiry), so the plugin's RS256 signing is
checked by an independent implementation.

  fake_gcs.py PORT_FILE --root DIR --public-key PEM --client-email EMAIL [--refresh-token T]

Objects are files DIR/<bucket>/<name>; user metadata is kept in DIR/<bucket>.metadata.json
(name -> {key: value}), which the test may write. Every storage request needs
"Authorization: Bearer <the token /token handed out>". Requests are logged to stderr as
"gcs: METHOD PATH status=STATUS"."""
import argparse, base64, hashlib, http.server, json, os, socketserver, sys, threading, urllib.parse

import google.auth.jwt

ap = argparse.ArgumentParser()
ap.add_argument("port_file")
ap.add_argument("--root", required=True)
ap.add_argument("--public-key", required=True)
ap.add_argument("--client-email", required=True)
ap.add_argument("--refresh-token", default="")
args = ap.parse_args()
TOKEN = "ya29.fake-access-token-7"
PUBLIC = open(args.public_key).read()
LOCK = threading.Lock()


def meta_file(bucket):
    return os.path.join(args.root, bucket + ".metadata.json")


def load_meta(bucket):
    try:
        return json.load(open(meta_file(bucket)))
    except OSError:
        return {}


def resource(bucket, name):
    path = os.path.join(args.root, bucket, name)
    st = os.stat(path)
    meta = load_meta(bucket).get(name, {})
    gen = str(st.st_mtime_ns)
    return {"kind": "storage#object", "bucket": bucket, "name": name, "size": str(st.st_size), "generation": gen,
            "metageneration": str(meta.get("__metageneration", 1)), "etag": base64.b64encode(gen.encode()).decode(),
            "metadata": {k: v for k, v in meta.items() if not k.startswith("__")}}


class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *a):
        pass

    def send(self, status, body=b"", ctype="application/json", headers=()):
        if isinstance(body, (dict, list)):
            body = json.dumps(body).encode()
        sys.stderr.write("gcs: %s %s status=%d\n" % (self.command, self.path, status))
        sys.stderr.flush()
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        for k, v in headers:
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def error(self, status, message):
        self.send(status, {"error": {"code": status, "message": message}})

    def body(self):
        return self.rfile.read(int(self.headers.get("Content-Length", "0")))

    def token_endpoint(self):
        form = urllib.parse.parse_qs(self.body().decode(), keep_blank_values=True)
        one = lambda k: form.get(k, [""])[0]
        if one("grant_type") == "urn:ietf:params:oauth:grant-type:jwt-bearer":
            aud = "http://%s/token" % self.headers.get("Host")
            try:
                claims = google.auth.jwt.decode(one("assertion"), certs=PUBLIC, audience=aud)
            except Exception as e:  # a bad signature, audience or expiry
                sys.stderr.write("gcs: JWT refused: %s\n" % e)
                return self.send(400, {"error": "invalid_grant", "error_description": "Invalid JWT Signature."})
            if claims.get("iss") != args.client_email or "devstorage" not in claims.get("scope", ""):
                return self.send(400, {"error": "invalid_grant", "error_description": "wrong issuer or scope"})
            sys.stderr.write("gcs: JWT verified for %s\n" % claims["iss"])
        elif one("grant_type") == "refresh_token":
            if not args.refresh_token or one("refresh_token") != args.refresh_token:
                return self.send(400, {"error": "invalid_grant", "error_description": "Bad Request"})
        else:
            return self.send(400, {"error": "unsupported_grant_type"})
        self.send(200, {"access_token": TOKEN, "expires_in": 3599, "token_type": "Bearer"})

    def authorized(self):
        if self.headers.get("Authorization") == "Bearer " + TOKEN:
            return True
        self.error(401, "Anonymous caller does not have storage.objects.list access, or the token is invalid.")
        return False

    def handle_any(self):
        u = urllib.parse.urlsplit(self.path)
        q = urllib.parse.parse_qs(u.query, keep_blank_values=True)
        one = lambda k: q.get(k, [""])[0]
        parts = u.path.split("/")
        if self.command == "POST" and u.path == "/token":
            return self.token_endpoint()
        if u.path == "/computeMetadata/v1/instance/service-accounts/default/token":
            if self.headers.get("Metadata-Flavor") != "Google":
                return self.send(403, b"Missing Metadata-Flavor:Google header", "text/plain")
            return self.send(200, {"access_token": TOKEN, "expires_in": 3599, "token_type": "Bearer"})
        if not self.authorized():
            return
        # /storage/v1/b/B/o[/NAME], /download/storage/v1/b/B/o/NAME, /upload/storage/v1/b/B/o
        if u.path.startswith("/download/"):
            parts = parts[1:]
        upload = u.path.startswith("/upload/")
        if upload:
            parts = parts[1:]
        if len(parts) < 6 or parts[1:4] != ["storage", "v1", "b"] or parts[5] != "o":
            return self.error(404, "Not Found")
        bucket = urllib.parse.unquote(parts[4])
        if not os.path.isdir(os.path.join(args.root, bucket)):
            return self.error(404, "The specified bucket does not exist.")
        name = urllib.parse.unquote("/".join(parts[6:])) if len(parts) > 6 else ""
        with LOCK:
            if self.command == "GET" and not name:
                return self.list(bucket, one("prefix"), one("delimiter"), one("pageToken"), int(one("maxResults") or "1000"))
            if upload and self.command == "POST":
                name = one("name")
                path = os.path.join(args.root, bucket, name)
                os.makedirs(os.path.dirname(path), exist_ok=True)
                with open(path, "wb") as f:
                    f.write(self.body())
                return self.send(200, resource(bucket, name))
            path = os.path.join(args.root, bucket, name)
            if not os.path.isfile(path):
                return self.error(404, "No such object: %s/%s" % (bucket, name))
            if self.command == "GET" and one("alt") == "media":
                return self.media(path)
            if self.command == "GET":
                return self.send(200, resource(bucket, name))
            if self.command == "PATCH":
                meta = load_meta(bucket)
                cur = meta.get(name, {})
                want = one("ifMetagenerationMatch")
                if want and want != str(cur.get("__metageneration", 1)):
                    return self.error(412, "Precondition Failed")
                cur.update(json.loads(self.body()).get("metadata", {}))
                cur["__metageneration"] = cur.get("__metageneration", 1) + 1
                meta[name] = cur
                json.dump(meta, open(meta_file(bucket), "w"))
                return self.send(200, resource(bucket, name))
        self.error(405, "Method Not Allowed")

    def list(self, bucket, prefix, delimiter, token, max_results):
        top = os.path.join(args.root, bucket)
        names = sorted(os.path.relpath(os.path.join(d, f), top) for d, _, fs in os.walk(top) for f in fs)
        entries, seen = [], set()  # objects and (with a delimiter) prefixes, in name order
        for n in names:
            if not n.startswith(prefix):
                continue
            rest = n[len(prefix):]
            if delimiter and delimiter in rest:
                p = prefix + rest[:rest.index(delimiter) + 1]
                if p not in seen:
                    seen.add(p)
                    entries.append(("p", p))
            else:
                entries.append(("o", n))
        start = int(base64.urlsafe_b64decode(token.encode()).decode()) if token else 0
        page = entries[start:start + max_results]
        out = {"kind": "storage#objects"}
        if any(k == "o" for k, _ in page):
            out["items"] = [resource(bucket, v) for k, v in page if k == "o"]
        if any(k == "p" for k, _ in page):
            out["prefixes"] = [v for k, v in page if k == "p"]
        if start + max_results < len(entries):
            out["nextPageToken"] = base64.urlsafe_b64encode(str(start + max_results).encode()).decode()
        self.send(200, out)

    def media(self, path):
        data = open(path, "rb").read()
        rng = self.headers.get("Range")
        if rng and rng.startswith("bytes="):
            a, _, b = rng[6:].partition("-")
            a = int(a)
            b = int(b) if b else len(data) - 1
            if a >= len(data):
                return self.send(416, b"", "text/plain", [("Content-Range", "bytes */%d" % len(data))])
            b = min(b, len(data) - 1)
            return self.send(206, data[a:b + 1], "application/octet-stream",
                             [("Content-Range", "bytes %d-%d/%d" % (a, b, len(data)))])
        self.send(200, data, "application/octet-stream")

    do_GET = do_POST = do_PATCH = handle_any


class S(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True


s = S(("127.0.0.1", 0), H)
with open(args.port_file + ".tmp", "w") as f:
    f.write(str(s.server_address[1]))
os.rename(args.port_file + ".tmp", args.port_file)
s.serve_forever()
