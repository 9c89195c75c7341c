#!/usr/bin/python3
"""Computes Shared Key string-to-sign and Authorization with Microsoft's own Python client
(Debian's python3-azure, azure.storage.blob's SharedKeyCredentialPolicy), the reference the
azure-blob plugin's signer (plugins/azure/azure.cc) is checked against in
tests/unit/objstore_test.cc. Not a product part.

Input (argv[1]): a JSON list of {account, key, method, url, headers: [[k, v]...]}.
Output (stdout): a JSON list of {string_to_sign, authorization}."""
import json, sys
from azure.storage.blob._shared.authentication import SharedKeyCredentialPolicy


class HttpRequest:
    def __init__(self, method, url, headers):
        self.method, self.url, self.headers = method, url, dict(headers)

    @property
    def query(self):  # as azure.core's HttpRequest.query: raw name=value pairs of the URL
        q = self.url.partition("?")[2]
        return {p[0]: p[-1] for p in [x.partition("=") for x in q.split("&")]} if q else {}


class Context:
    transport = None


class Request:
    def __init__(self, http_request):
        self.http_request, self.context = http_request, Context()


out = []
for c in json.load(open(sys.argv[1], encoding="utf-8")):
    policy = SharedKeyCredentialPolicy(c["account"], c["key"])
    r = Request(HttpRequest(c["method"], c["url"], c["headers"]))
    to_sign = (policy._get_verb(r) + policy._get_headers(r, ["content-encoding", "content-language", "content-length",
                                                             "content-md5", "content-type", "date", "if-modified-since",
                                                             "if-match", "if-none-match", "if-unmodified-since", "byte_range"])
               + policy._get_canonicalized_headers(r) + policy._get_canonicalized_resource(r)
               + policy._get_canonicalized_resource_query(r))
    policy._add_authorization_header(r, to_sign)
    out.append({"string_to_sign": to_sign, "authorization": r.http_request.headers["Authorization"]})
print(json.dumps(out))
