#!/usr/bin/python3
"""Signs requests with botocore's S3SigV4Auth (Debian's python3-botocore), the reference the
project's own signer (plugins/s3/sigv4.cc) is checked against byte for byte in
tests/unit/sigv4_test.cc. Not a product part.

Input (argv[1]): a JSON list of cases {method, host, bucket, key, query: [[k, v]...],
headers: [[k, v]...], body, region, service, date, access_key, secret_key, token}. The URL
path is built the way botocore's REST serializer builds S3's: "/" + percent_encode(bucket,
safe="") + "/" + percent_encode(key, safe="/~") (bucket empty: virtual-hosted, "/" + key).
Output (stdout): a JSON list of {authorization, canonical_request, headers} per case."""
import json, sys

from botocore.auth import S3SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from botocore.utils import percent_encode

out = []
for c in json.load(open(sys.argv[1], encoding="utf-8")):
    path = "/" + (percent_encode(c["bucket"], safe="") + "/" if c["bucket"] else "") + percent_encode(c["key"], safe="/~")
    req = AWSRequest(method=c["method"], url="http://" + c["host"] + path, data=c["body"].encode("utf-8"),
                     params=[tuple(p) for p in c["query"]], headers=dict(c["headers"]))
    creds = Credentials(c["access_key"], c["secret_key"], c["token"] or None)
    auth = S3SigV4Auth(creds, c["service"], c["region"])
    req.context["timestamp"] = c["date"]
    auth._modify_request_before_signing(req)
    canonical = auth.canonical_request(req)
    signature = auth.signature(auth.string_to_sign(req, canonical), req)
    auth._inject_signature_to_request(req, signature)
    out.append({"authorization": req.headers["Authorization"], "canonical_request": canonical,
                "headers": {k.lower(): v for k, v in req.headers.items()}})
json.dump(out, sys.stdout)
