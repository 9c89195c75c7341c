#!/usr/bin/python3
"""A loopback stand-in for a registry's Bearer token flow, in front of a real docker-registry
(used by oci_registry_test.cc): /token hands out a token for basic credentials USER:PASSWORD;
/v2/... without that token answers 401 with a WWW-Authenticate Bearer challenge, and with it
is forwarded (GET/HEAD) to the upstream registry. Not a product part: docker-registry's own
`auth: token` needs a signing certificate and JWTs, heavier than this test needs."""
import base64, http.server, socketserver, sys, urllib.request, urllib.error

upstream, userpass, port_file = sys.argv[1], sys.argv[2], sys.argv[3]
TOKEN = "tok-BEARER-77"


class H(http.server.BaseHTTPRequestHandler):
    def log_message(self, *a):
        sys.stderr.write("realm: " + (a[0] % a[1:]) + "\n")

    def send(self, status, body=b"", headers=()):
        self.send_response(status)
        for k, v in headers:
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def handle_any(self):
        host = "127.0.0.1:%d" % self.server.server_address[1]
        if self.path.startswith("/token"):
            want = "Basic " + base64.b64encode(userpass.encode()).decode()
            if self.headers.get("Authorization") != want:
                return self.send(401, b'{"errors":[{"code":"UNAUTHORIZED"}]}')
            return self.send(200, ('{"token":"%s"}' % TOKEN).encode(), [("Content-Type", "application/json")])
        if self.headers.get("Authorization") != "Bearer " + TOKEN:
            challenge = 'Bearer realm="http://%s/token",service="modelzoo-test",scope="repository:acme/llm:pull"' % host
            return self.send(401, b'{"errors":[{"code":"UNAUTHORIZED"}]}', [("WWW-Authenticate", challenge)])
        req = urllib.request.Request(upstream + self.path, method=self.command)
        for k in ("Accept", "Range"):
            if self.headers.get(k):
                req.add_header(k, self.headers.get(k))
        try:
            r = urllib.request.urlopen(req)
            status, body, hd = r.status, r.read(), r.headers
        except urllib.error.HTTPError as e:
            status, body, hd = e.code, e.read(), e.headers
        keep = [(k, hd[k]) for k in ("Content-Type", "Docker-Content-Digest", "Content-Range", "Link") if hd.get(k)]
        self.send(status, body, keep)

    do_GET = do_HEAD = handle_any


class S(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True


s = S(("127.0.0.1", 0), H)
with open(port_file + ".tmp", "w") as f:
    f.write(str(s.server_address[1]))
import os
os.rename(port_file + ".tmp", port_file)
s.serve_forever()
