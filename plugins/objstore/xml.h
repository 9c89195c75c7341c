// The XML answers of object stores (S3's ListBucketResult, STS, Azure's EnumerationResults),
// read with expat (Debian: libexpat1-dev) as a stream of elements: no tree is built, so a page
// of a listing costs memory for the entries the caller keeps, not for the document. expat
// fetches no external entity and refuses entity-expansion bombs (2.4+).
#pragma once

#include <functional>
#include <string>
#include <string_view>

namespace modelzoo::plugins::objstore {

// Calls `on_text(path, text)` when an element that holds text closes (path: the element names
// from the root, '/'-separated, e.g. "ListBucketResult/Contents/Key"; text: its character data,
// entities decoded), and `on_close(path)` when any element closes (after its children).
// Throws std::invalid_argument naming expat's error and line when `xml` is not well-formed,
// nests deeper than 32 elements, or an element's text exceeds 64 KiB.
void walk_xml(std::string_view xml, const std::function<void(const std::string& path, const std::string& text)>& on_text,
              const std::function<void(const std::string& path)>& on_close = {});

}  // namespace modelzoo::plugins::objstore
