#include "objstore/xml.h"

#include <expat.h>

#include <memory>
#include <stdexcept>
#include <vector>

namespace modelzoo::plugins::objstore {

namespace {

constexpr std::size_t kMaxDepth = 32;
constexpr std::size_t kMaxText = 64 * 1024;

struct Walk {
  XML_Parser parser;
  const std::function<void(const std::string&, const std::string&)>* on_text;
  const std::function<void(const std::string&)>* on_close;
  std::string path;
  std::vector<std::size_t> starts;  // where each open element's name starts in `path`
  std::string text;
  bool has_text = false;
  std::string error;
  std::exception_ptr thrown;

  void stop(std::string why) {
    if (error.empty()) error = std::move(why);
    XML_StopParser(parser, XML_FALSE);
  }
};

void XMLCALL on_start(void* ud, const XML_Char* name, const XML_Char**) {
  auto* w = static_cast<Walk*>(ud);
  if (w->starts.size() >= kMaxDepth) return w->stop("elements nest deeper than " + std::to_string(kMaxDepth) + " levels");
  w->starts.push_back(w->path.size());
  if (!w->path.empty()) w->path += '/';
  w->path += name;
  w->text.clear();
  w->has_text = false;
}

void XMLCALL on_end(void* ud, const XML_Char*) {
  auto* w = static_cast<Walk*>(ud);
  try {
    if (w->has_text && *w->on_text) (*w->on_text)(w->path, w->text);
    if (*w->on_close) (*w->on_close)(w->path);
  } catch (...) {
    w->thrown = std::current_exception();
    XML_StopParser(w->parser, XML_FALSE);
    return;
  }
  w->path.resize(w->starts.back());
  w->starts.pop_back();
  w->text.clear();
  w->has_text = false;
}

void XMLCALL on_chars(void* ud, const XML_Char* s, int len) {
  auto* w = static_cast<Walk*>(ud);
  if (w->text.size() + static_cast<std::size_t>(len) > kMaxText)
    return w->stop("an element's text is longer than " + std::to_string(kMaxText) + " bytes");
  w->text.append(s, static_cast<std::size_t>(len));
  w->has_text = true;
}

}  // namespace

void walk_xml(std::string_view xml, const std::function<void(const std::string&, const std::string&)>& on_text,
              const std::function<void(const std::string&)>& on_close) {
  std::unique_ptr<std::remove_pointer_t<XML_Parser>, decltype(&XML_ParserFree)> p(XML_ParserCreate("UTF-8"), &XML_ParserFree);
  if (!p) throw std::runtime_error("cannot create an XML parser (out of memory)");
  Walk w{p.get(), &on_text, &on_close, {}, {}, {}, false, {}, nullptr};
  XML_SetUserData(p.get(), &w);
  XML_SetElementHandler(p.get(), on_start, on_end);
  XML_SetCharacterDataHandler(p.get(), on_chars);
  XML_Status st = XML_Parse(p.get(), xml.data(), static_cast<int>(xml.size()), XML_TRUE);
  if (w.thrown) std::rethrow_exception(w.thrown);
  if (!w.error.empty()) throw std::invalid_argument("the XML answer is refused: " + w.error);
  if (st != XML_STATUS_OK)
    throw std::invalid_argument(std::string("the answer is not well-formed XML (") + XML_ErrorString(XML_GetErrorCode(p.get())) +
                                " at line " + std::to_string(XML_GetCurrentLineNumber(p.get())) + ")");
}

}  // namespace modelzoo::plugins::objstore
