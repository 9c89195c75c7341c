// AWS Signature Version 4 for S3 and S3-compatible stores (MinIO, Ceph RGW, R2, Wasabi; GCS's
// XML API with HMAC keys), implemented here with OpenSSL's HMAC: libcurl 7.88's built-in
// SigV4 (Debian 12) omits x-amz-content-sha256 and canonicalises query strings wrongly.
//
// The rules (docs.aws.amazon.com, "Signature Version 4 for API requests", S3's variant):
//   canonical request = METHOD \n URI \n QUERY \n HEADERS \n\n SIGNED \n PAYLOAD
//   URI      the path, each byte outside A-Z a-z 0-9 - . _ ~ and '/' percent-encoded once
//            (S3 does not normalise or double-encode it)
//   QUERY    name=value pairs, both encoded the same way with '/' encoded too, sorted by name
//            then value; an empty value keeps its '='
//   HEADERS  lower-case names, values trimmed with inner runs of blanks made one, sorted;
//            host, x-amz-date and x-amz-content-sha256 always, x-amz-security-token with a
//            session token, and whatever the caller adds (range, ...)
//   key      HMAC chain "AWS4"+secret -> date -> region -> service -> "aws4_request"
// Checked byte for byte against botocore (tests/unit/sigv4_test.cc, tests/s3/botocore_sign.py).
#pragma once

#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace modelzoo::plugins::s3 {

struct Credentials {
  std::string access_key;
  std::string secret_key;
  std::string session_token;  // empty unless temporary credentials
};

using Pairs = std::vector<std::pair<std::string, std::string>>;

struct Request {
  std::string method = "GET";
  std::string host;    // the Host header: "bucket.s3.eu-west-1.amazonaws.com", "127.0.0.1:4568"
  std::string path;    // not encoded: "/bucket/models/llm 1/w.bin" (path style) or "/models/..."
  Pairs query;         // not encoded, any order
  Pairs headers;       // signed as well, names in any case (e.g. {"Range", "bytes=0-9"})
  std::string payload_sha256;  // hex sha256 of the body; empty: of an empty body
  std::string region = "us-east-1";
  std::string service = "s3";
  std::string amz_date;  // "YYYYMMDDTHHMMSSZ" (UTC); empty: now
};

struct Signed {
  Pairs headers;                 // to send: x-amz-date, x-amz-content-sha256, [x-amz-security-token], authorization
  std::string target;            // encoded path and query, for the request line
  std::string canonical_request;  // for errors and tests
  std::string string_to_sign;
  std::string signature;         // hex
};

// Percent-encodes every byte but A-Z a-z 0-9 - . _ ~ (and '/' when keep_slash), upper-case hex.
std::string uri_encode(std::string_view s, bool keep_slash);

// "YYYYMMDDTHHMMSSZ" of the current UTC time.
std::string amz_date_now();

// Signs `r`. Never logs; the secret appears in no field of the result.
Signed sign(const Request& r, const Credentials& c);

}  // namespace modelzoo::plugins::s3
