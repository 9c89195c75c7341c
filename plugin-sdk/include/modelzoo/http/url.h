// Percent-encoding of request paths (part of the SDK's HTTP base, modelzoo/http.h).
#pragma once

#include <string>
#include <string_view>

namespace modelzoo::sdk::http {

// Percent-encodes one path segment (everything but A-Z a-z 0-9 - . _ ~).
std::string encode_segment(std::string_view segment);
// Percent-encodes each '/'-separated segment of a model or file name, keeping the '/'.
std::string encode_path(std::string_view name);

}  // namespace modelzoo::sdk::http
