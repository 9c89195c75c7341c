#!/usr/bin/python3
"""Loopback stand-ins for AWS STS (AssumeRoleWithWebIdentity) and the EC2 instance metadata
service (IMDSv2), for the s3 plugin's tests. Not a product part. Both hand out the key pair
s3rver accepts (S3RVER/S3RVER) with a session token, so a pull that works proves the exchange.

  aws_endpoints.py PORT_FILE --token WEB_IDENTITY_TOKEN --role ROLE_ARN

STS: POST / with the form Action=AssumeRoleWithWebIdentity, RoleArn, RoleSessionName,
WebIdentityToken, Version; a wrong role or token answers 403 AccessDenied (XML, as STS).
IMDSv2: PUT /latest/api/token (needs X-aws-ec2-metadata-token-ttl-seconds) gives a token that
GET /latest/meta-data/iam/security-credentials/[ROLE] requires (401 without).
Each request is logged to stderr as "aws: METHOD PATH [Action]"."""
import argparse, http.server, os, socketserver, sys, urllib.parse

ap = argparse.ArgumentParser()
ap.add_argument("port_file")
ap.add_argument("--token", required=True)
ap.add_argument("--role", required=True)
args = ap.parse_args()
IMDS_TOKEN = "imds-session-token-5"
EXPIRES = "2099-01-01T00:00:00Z"


class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *a):
        pass

    def send(self, status, body, ctype="text/xml"):
        body = body.encode()
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self):
        form = urllib.parse.parse_qs(self.rfile.read(int(self.headers.get("Content-Length", "0"))).decode(), keep_blank_values=True)
        one = lambda k: form.get(k, [""])[0]
        sys.stderr.write("aws: POST %s %s session=%s\n" % (self.path, one("Action"), one("RoleSessionName")))
        sys.stderr.flush()
        if one("Action") != "AssumeRoleWithWebIdentity" or one("Version") != "2011-06-15":
            return self.send(400, "<ErrorResponse><Error><Code>InvalidAction</Code><Message>no</Message></Error></ErrorResponse>")
        if one("RoleArn") != args.role or one("WebIdentityToken") != args.token:
            return self.send(403, "<ErrorResponse><Error><Code>AccessDenied</Code><Message>Not authorized to perform "
                                  "sts:AssumeRoleWithWebIdentity</Message></Error></ErrorResponse>")
        self.send(200, "<AssumeRoleWithWebIdentityResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\">"
                       "<AssumeRoleWithWebIdentityResult><Credentials><AccessKeyId>S3RVER</AccessKeyId>"
                       "<SecretAccessKey>S3RVER</SecretAccessKey><SessionToken>sts-session-9</SessionToken>"
                       "<Expiration>%s</Expiration></Credentials></AssumeRoleWithWebIdentityResult>"
                       "</AssumeRoleWithWebIdentityResponse>" % EXPIRES)

    def do_PUT(self):
        sys.stderr.write("aws: PUT %s\n" % self.path)
        sys.stderr.flush()
        if self.path != "/latest/api/token" or not self.headers.get("X-aws-ec2-metadata-token-ttl-seconds"):
            return self.send(400, "bad", "text/plain")
        self.send(200, IMDS_TOKEN, "text/plain")

    def do_GET(self):
        sys.stderr.write("aws: GET %s\n" % self.path)
        sys.stderr.flush()
        if self.headers.get("X-aws-ec2-metadata-token") != IMDS_TOKEN:
            return self.send(401, "", "text/plain")
        base = "/latest/meta-data/iam/security-credentials/"
        if self.path == base:
            return self.send(200, "modelzoo-role\n", "text/plain")
        if self.path == base + "modelzoo-role":
            return self.send(200, '{"Code":"Success","Type":"AWS-HMAC","AccessKeyId":"S3RVER","SecretAccessKey":"S3RVER",'
                                  '"Token":"imds-creds-token","Expiration":"%s"}' % EXPIRES, "text/plain")
        self.send(404, "", "text/plain")


class S(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True


s = S(("127.0.0.1", 0), H)
with open(args.port_file + ".tmp", "w") as f:
    f.write(str(s.server_address[1]))
os.rename(args.port_file + ".tmp", args.port_file)
s.serve_forever()
