#!/usr/bin/python3
"""A loopback proxy in front of a real docker-registry, for oci_registry_test.cc. Not a product
part. It adds what the real registry cannot be made to do on demand:

  --token USER:PASSWORD  a registry's Bearer token flow: /token hands out a token for these
                         basic credentials; /v2/... without that token answers 401 with a
                         WWW-Authenticate Bearer challenge. (docker-registry's own `auth: token`
                         needs a signing certificate and JWTs, heavier than the tests need.)
  --rate BYTES           each blob answer is sent at about BYTES per second (per connection)
  --fault-file PATH      while PATH exists, blob GETs answer its first line "STATUS [RETRY_AFTER]"
                         (the test writes and removes it)

Every request is logged to stderr as "proxy: METHOD PATH range=RANGE status=STATUS". It writes its
port to PORT_FILE once it listens."""
import argparse, base64, http.server, os, socketserver, sys, time, urllib.request, urllib.error

ap = argparse.ArgumentParser()
ap.add_argument("upstream")
ap.add_argument("port_file")
ap.add_argument("--token", default="")
ap.add_argument("--rate", type=int, default=0)
ap.add_argument("--fault-file", default="")
args = ap.parse_args()
TOKEN = "tok-BEARER-77"


class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *a):
        pass

    def send(self, status, body=b"", headers=(), throttle=False):
        sys.stderr.write("proxy: %s %s range=%s status=%d\n" % (self.command, self.path, self.headers.get("Range", "-"), status))
        sys.stderr.flush()
        self.send_response(status)
        for k, v in headers:
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command == "HEAD":
            return
        if not throttle or args.rate <= 0:
            self.wfile.write(body)
            return
        step = max(1, args.rate // 20)
        for i in range(0, len(body), step):
            self.wfile.write(body[i:i + step])
            self.wfile.flush()
            time.sleep(step / args.rate)

    def fault(self):
        if not args.fault_file or "/blobs/" not in self.path:
            return None
        try:
            with open(args.fault_file) as f:
                parts = f.readline().split()
        except OSError:
            return None
        hd = [("Retry-After", parts[1])] if len(parts) > 1 else []
        return int(parts[0]), hd

    def handle_any(self):
        host = "127.0.0.1:%d" % self.server.server_address[1]
        if args.token:
            user = args.token
            if self.path.startswith("/token"):
                want = "Basic " + base64.b64encode(user.encode()).decode()
                if self.headers.get("Authorization") != want:
                    return self.send(401, b'{"errors":[{"code":"UNAUTHORIZED"}]}')
                return self.send(200, ('{"token":"%s"}' % TOKEN).encode(), [("Content-Type", "application/json")])
            if self.headers.get("Authorization") != "Bearer " + TOKEN:
                challenge = 'Bearer realm="http://%s/token",service="modelzoo-test"' % host
                return self.send(401, b'{"errors":[{"code":"UNAUTHORIZED"}]}', [("WWW-Authenticate", challenge)])
        f = self.fault()
        if f:
            return self.send(f[0], b'{"errors":[{"code":"INJECTED"}]}', f[1])
        req = urllib.request.Request(args.upstream + self.path, method=self.command)
        for k in ("Accept", "Range", "Authorization"):
            if self.headers.get(k):
                req.add_header(k, self.headers.get(k))
        try:
            r = urllib.request.urlopen(req)
            status, body, hd = r.status, r.read(), r.headers
        except urllib.error.HTTPError as e:
            status, body, hd = e.code, e.read(), e.headers
        keep = [(k, hd[k]) for k in ("Content-Type", "Docker-Content-Digest", "Content-Range", "Link", "ETag",
                                     "WWW-Authenticate", "Accept-Ranges") if hd.get(k)]
        self.send(status, body, keep, throttle="/blobs/" in self.path)

    do_GET = do_HEAD = handle_any


class S(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True


s = S(("127.0.0.1", 0), H)
with open(args.port_file + ".tmp", "w") as f:
    f.write(str(s.server_address[1]))
os.rename(args.port_file + ".tmp", args.port_file)
s.serve_forever()
