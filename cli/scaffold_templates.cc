#include "scaffold_templates.h"

#include <cctype>
#include <cstdio>
#include <stdexcept>

namespace modelzoo::cli::scaffold {
namespace {

// ---- C++ ---------------------------------------------------------------------------------

const char* const kCppCMakeLists = R"TPL(# {{NAME}}: a modelzoo {{KIND}} plugin, built against the installed modelzoo C++ SDK.
#
#   cmake -S . -B build -DCMAKE_PREFIX_PATH=<modelzoo's install prefix>
#   cmake --build build
#
# The binary lands in build/{{NAME}}, where plugin.yaml's `command` points.
cmake_minimum_required(VERSION 3.20)
project({{NAME}} VERSION 0.1.0 LANGUAGES CXX)

set(CMAKE_CXX_STANDARD 20)
set(CMAKE_CXX_STANDARD_REQUIRED ON)
if(NOT CMAKE_BUILD_TYPE)
  set(CMAKE_BUILD_TYPE RelWithDebInfo)
endif()

find_package(modelzoo {{SDK_MAJOR_MINOR}} REQUIRED)  # modelzoo::plugin_sdk

add_executable({{NAME}} main.cc)
target_link_libraries({{NAME}} PRIVATE modelzoo::plugin_sdk)
target_compile_options({{NAME}} PRIVATE -Wall -Wextra)
set_target_properties({{NAME}} PROPERTIES RUNTIME_OUTPUT_DIRECTORY ${CMAKE_BINARY_DIR})
)TPL";

const char* const kCppRegistryMain = R"TPL(// {{NAME}}: a modelzoo registry plugin. It serves one small model from memory,
// {{MODEL}} version 1.0.0, made of two files: hello.txt, a greeting, and weights.bin,
// 256 KiB of made-up weights. Replace the model with yours: every contract is documented in
// <modelzoo/plugin.h>.
//
// Configuration (the source's or the manifest's `config:`):
//   text: "..."      the content of hello.txt (default: a greeting)
#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

#include "modelzoo/bus/sha256.h"
#include "modelzoo/plugin.h"

namespace sdk = modelzoo::sdk;

namespace {

const std::string kModel = "{{MODEL}}";
const std::string kVersion = "1.0.0";
const std::string kDescription = "A greeting and some weights, served by {{NAME}}";

struct File {
  std::string name;
  std::string content;
  std::string sha256;
};

class {{CLASS}} final : public sdk::Registry {
 public:
  // Called once, before any request; nothing changes afterwards, so the other methods may
  // run on several threads at once without locks.
  void configure(const nlohmann::json& config) override {
    std::string text = "Hello from {{NAME}}!\n";
    if (auto it = config.find("text"); it != config.end()) {
      if (!it->is_string()) throw std::runtime_error("{{NAME}}: 'text' must be a string");
      text = it->get<std::string>();
    }
    std::string weights(256 * 1024, '\0');
    std::uint32_t x = 12345;  // a fixed pseudo-random sequence: the same bytes every time
    for (auto& c : weights) {
      x = x * 1664525u + 1013904223u;
      c = static_cast<char>(x >> 24);
    }
    files_ = {{"hello.txt", text, modelzoo::bus::Sha256::of(text)},
              {"weights.bin", weights, modelzoo::bus::Sha256::of(weights)}};
    sdk::log("info", "{{NAME}}: serving " + kModel + ":" + kVersion);
  }

  sdk::ModelMetadata metadata(const std::string& name, const std::string& version) override {
    if (name != kModel) throw sdk::Error(sdk::ErrorCode::not_found, "{{NAME}}: no model '" + name + "'");
    if (!version.empty() && version != kVersion)
      throw sdk::Error(sdk::ErrorCode::not_found, "{{NAME}}: no version '" + version + "' of '" + name + "'");
    sdk::ModelMetadata m;
    m.name = kModel;
    m.version = kVersion;  // "" asks for the latest: the only one
    m.description = kDescription;
    m.author = "{{NAME}}";
    m.license = "CC0-1.0";
    m.format = "raw";
    m.tags = {"example"};
    for (const auto& f : files_) m.files.push_back({f.name, f.content.size(), f.sha256});
    return m;
  }

  bool exists(const std::string& name, const std::string& version) override {
    return name == kModel && (version.empty() || version == kVersion);
  }

  std::vector<sdk::ModelSummary> list() override { return {{kModel, {kVersion}, kDescription}}; }

  void download(const sdk::DownloadRequest& req, sdk::ChunkSink& sink) override {
    metadata(req.name, req.version);  // not_found for any other model or version
    for (const auto& f : files_) {
      if (f.name != req.file) continue;
      if (req.offset > f.content.size())
        throw sdk::Error(sdk::ErrorCode::bad_request,
                         "{{NAME}}: offset " + std::to_string(req.offset) + " is past the end of " + f.name);
      // Split into chunks and paced by the daemon's credit; throws if cancelled: let it propagate.
      sink.write(f.content.data() + req.offset, f.content.size() - req.offset);
      return;
    }
    throw sdk::Error(sdk::ErrorCode::not_found, "{{NAME}}: no file '" + req.file + "' in " + kModel);
  }

 private:
  std::vector<File> files_;  // written by configure() only, before any request
};

}  // namespace

int main(int argc, char** argv) {
  {{CLASS}} registry;
  // Answers come from memory and never block: metadata, exists and list may run on the main loop.
  return sdk::run(registry,
                  {.name = "{{NAME}}", .version = "0.1.0", .priority = 0, .handles = {"{{NAME}}/*"},
                   .inline_requests = true},
                  argc, argv);
}
)TPL";

const char* const kCppExtensionMain = R"TPL(// {{NAME}}: a modelzoo extension. After a model is downloaded and verified, and before it
// enters the cache (point post-download), it rejects the model when one of its files is
// named "*.bad" and lets every other model through. Replace the rule with yours: every
// contract is documented in <modelzoo/extension.h>.
//
// Configuration (the source's or the manifest's `config:`):
//   suffix: ".bad"    the file-name suffix to reject (default ".bad")
#include <stdexcept>
#include <string>

#include "modelzoo/extension.h"

namespace sdk = modelzoo::sdk;

namespace {

class {{CLASS}} final : public sdk::Extension {
 public:
  // Called once, before any hook; hook() may then run on several threads at once.
  void configure(const nlohmann::json& config) override {
    if (auto it = config.find("suffix"); it != config.end()) {
      if (!it->is_string() || it->get<std::string>().empty())
        throw std::runtime_error("{{NAME}}: 'suffix' must be a non-empty string");
      suffix_ = it->get<std::string>();
    }
    sdk::log("info", "{{NAME}}: rejecting models with a file named *" + suffix_);
  }

  sdk::HookResult hook(const sdk::HookRequest& req) override {
    for (const auto& f : req.files)
      if (f.name.size() >= suffix_.size() && f.name.substr(f.name.size() - suffix_.size()) == suffix_)
        return sdk::HookResult::reject(f.name + ": files named *" + suffix_ + " are not allowed");
    return sdk::HookResult::proceed(std::to_string(req.files.size()) + " file(s) checked");
  }

 private:
  std::string suffix_ = ".bad";
};

}  // namespace

int main(int argc, char** argv) {
  {{CLASS}} extension;
  return sdk::run(extension,
                  {.name = "{{NAME}}",
                   .version = "0.1.0",
                   .points = {sdk::kPostDownload},  // after download and verification, before the cache
                   .formats = {},                   // any file format
                   .order = 0,
                   .handles = {"*"}},
                  argc, argv);
}
)TPL";

const char* const kCppRegistryManifest = R"TPL(# {{NAME}}: a modelzoo registry plugin (docs/configuration.md, "Plugin manifests").
# Check it with `modelzoo plugin validate .`
name: {{NAME}}
version: 0.1.0
kind: registry
# The bus protocol versions it speaks.
protocol: [1]
# Relative to this directory; built by `cmake -S . -B build && cmake --build build`.
command: [./{{BINARY}}]
priority: 0
handles: ["{{NAME}}/*"]
)TPL";

const char* const kCppExtensionManifest = R"TPL(# {{NAME}}: a modelzoo extension (docs/extensions.md; docs/configuration.md, "Plugin manifests").
# Check it with `modelzoo plugin validate .`
name: {{NAME}}
version: 0.1.0
kind: extension
# The bus protocol versions it speaks.
protocol: [1]
# Relative to this directory; built by `cmake -S . -B build && cmake --build build`.
command: [./{{BINARY}}]
points: [post-download]
order: 0
handles: ["*"]
)TPL";

const char* const kCppReadme = R"TPL(# {{NAME}}

A modelzoo {{KIND}} plugin in C++, created by `modelzoo plugin new {{NAME}} --lang cpp --kind {{KIND}}`.
{{WHAT}}

## Build

It builds against the installed modelzoo C++ SDK (`find_package(modelzoo)`, target
`modelzoo::plugin_sdk`):

```sh
cmake -S . -B build -DCMAKE_PREFIX_PATH={{PREFIX}}
cmake --build build
```

The binary is `build/{{NAME}}`, which `plugin.yaml` names as the `command`.

## Check it

```sh
modelzoo plugin validate .               # the manifest
modelzoo plugin test -- ./build/{{NAME}}
```

`plugin test` is the conformance kit: it starts the plugin the way modelzood does and runs
the protocol through it, one line per check.

## Run it under modelzood

Put this directory in one of the daemon's `plugin_dirs` (by default
`~/.local/share/modelzoo/plugins`), for example with a symbolic link:

```sh
mkdir -p ~/.local/share/modelzoo/plugins
ln -s "$PWD" ~/.local/share/modelzoo/plugins/{{NAME}}
```

Every manifest found there runs as a source of its own name. To give it a configuration,
name it in a source of the daemon's configuration file:

```yaml
sources:
  - name: {{NAME}}
    plugin: {{NAME}}
{{CONFIG_EXAMPLE}})TPL";

// ---- Python ------------------------------------------------------------------------------

const char* const kPythonPrologue = R"TPL(#!/usr/bin/python3
"""{{NAME}}: {{DOC}}"""

{{EXTRA_IMPORTS}}import os
import sys

# The modelzoo Python SDK (package modelzoo_plugin): from the Python path if it is there,
# else from MODELZOO_PYTHON_SDK, else from where `modelzoo plugin new` found it.
SDK_DIR = {{PY_SDK_DIR}}
try:
    import modelzoo_plugin as mp
except ImportError:
    for _d in (SDK_DIR, os.environ.get("MODELZOO_PYTHON_SDK")):
        if _d and os.path.isdir(_d):
            sys.path.insert(0, _d)
    import modelzoo_plugin as mp
)TPL";

const char* const kPythonRegistry = R"TPL(
MODEL = "{{MODEL}}"
VERSION = "1.0.0"
DESCRIPTION = "A greeting and some weights, served by {{NAME}}"


class {{CLASS}}(mp.Registry):
    """Serves one small model from memory: {{MODEL}} 1.0.0, made of two files: hello.txt, a
    greeting, and weights.bin, 256 KiB of made-up weights.

    Configuration (the source's or the manifest's `config:`):
        text: "..."      the content of hello.txt (default: a greeting)
    """

    def __init__(self):
        self.files = {}  # file name -> bytes; written by configure() only, before any request

    # Called once, before any request; nothing changes afterwards, so the other methods may
    # run on several threads at once without locks.
    def configure(self, config):
        text = config.get("text", "Hello from {{NAME}}!\n")
        if not isinstance(text, str):
            raise ValueError("'text' must be a string")
        weights = b"".join(hashlib.sha256(i.to_bytes(4, "big")).digest() for i in range(8192))  # the same every time
        self.files = {"hello.txt": text.encode(), "weights.bin": weights}
        mp.log("info", "{{NAME}}: serving %s:%s" % (MODEL, VERSION))

    def exists(self, name, version):
        return name == MODEL and version in ("", VERSION)

    def metadata(self, name, version):
        if name != MODEL:
            raise mp.NotFound("{{NAME}}: no model '%s'" % name)
        if version not in ("", VERSION):
            raise mp.NotFound("{{NAME}}: no version '%s' of '%s'" % (version, name))
        files = [mp.FileInfo(n, len(data), hashlib.sha256(data).hexdigest()) for n, data in self.files.items()]
        return mp.ModelMetadata(name=MODEL, version=VERSION, description=DESCRIPTION, author="{{NAME}}",
                                license="CC0-1.0", format="raw", tags=["example"], files=files)

    def list(self):
        return [mp.ModelSummary(MODEL, [VERSION], DESCRIPTION)]

    def download(self, req, sink):
        self.metadata(req.name, req.version)  # NotFound for any other model or version
        data = self.files.get(req.file)
        if data is None:
            raise mp.NotFound("{{NAME}}: no file '%s' in %s" % (req.file, MODEL))
        if req.offset > len(data):
            raise mp.BadRequest("{{NAME}}: offset %d is past the end of %s" % (req.offset, req.file))
        # Split into chunks and paced by the daemon's credit; raises if cancelled: let it propagate.
        sink.write(data[req.offset:])


if __name__ == "__main__":
    sys.exit(mp.run({{CLASS}}(), name="{{NAME}}", version="0.1.0", priority=0, handles=["{{NAME}}/*"]))
)TPL";

const char* const kPythonExtension = R"TPL(

class {{CLASS}}(mp.Extension):
    """After a model is downloaded and verified, and before it enters the cache (point
    post-download), rejects it when one of its files is named "*.bad".

    Configuration (the source's or the manifest's `config:`):
        suffix: ".bad"    the file-name suffix to reject (default ".bad")
    """

    def __init__(self):
        self.suffix = ".bad"

    # Called once, before any hook; hook() may then run on several threads at once.
    def configure(self, config):
        suffix = config.get("suffix", self.suffix)
        if not isinstance(suffix, str) or not suffix:
            raise ValueError("'suffix' must be a non-empty string")
        self.suffix = suffix
        mp.log("info", "{{NAME}}: rejecting models with a file named *%s" % self.suffix)

    def hook(self, req):
        for f in req.files:
            if f.name.endswith(self.suffix):
                return mp.HookResult.reject("%s: files named *%s are not allowed" % (f.name, self.suffix))
        return mp.HookResult.proceed("%d file(s) checked" % len(req.files))


if __name__ == "__main__":
    sys.exit(mp.run({{CLASS}}(), name="{{NAME}}", version="0.1.0", points=[mp.POST_DOWNLOAD], formats=[], order=0,
                    handles=["*"]))
)TPL";

const char* const kPythonRegistryManifest = R"TPL(# {{NAME}}: a modelzoo registry plugin (docs/configuration.md, "Plugin manifests").
# Check it with `modelzoo plugin validate .`
name: {{NAME}}
version: 0.1.0
kind: registry
# The bus protocol versions it speaks.
protocol: [1]
# The plugin runs in this directory.
command: [/usr/bin/python3, ./plugin.py]
priority: 0
handles: ["{{NAME}}/*"]
)TPL";

const char* const kPythonExtensionManifest = R"TPL(# {{NAME}}: a modelzoo extension (docs/extensions.md; docs/configuration.md, "Plugin manifests").
# Check it with `modelzoo plugin validate .`
name: {{NAME}}
version: 0.1.0
kind: extension
# The bus protocol versions it speaks.
protocol: [1]
# The plugin runs in this directory.
command: [/usr/bin/python3, ./plugin.py]
points: [post-download]
order: 0
handles: ["*"]
)TPL";

const char* const kPythonReadme = R"TPL(# {{NAME}}

A modelzoo {{KIND}} plugin in Python, created by `modelzoo plugin new {{NAME}} --lang python --kind {{KIND}}`.
{{WHAT}}

It needs pyzmq and msgpack (Debian: `apt install python3-zmq python3-msgpack`) and the
modelzoo Python SDK, the package `modelzoo_plugin`. `plugin.py` imports it from the Python
path, else from `$MODELZOO_PYTHON_SDK`, else from where modelzoo installed it when this
plugin was created:

    {{PY_SDK_DIR_PLAIN}}

## Check it

```sh
modelzoo plugin validate .               # the manifest
modelzoo plugin test -- /usr/bin/python3 ./plugin.py
```

`plugin test` is the conformance kit: it starts the plugin the way modelzood does and runs
the protocol through it, one line per check.

## Run it under modelzood

Put this directory in one of the daemon's `plugin_dirs` (by default
`~/.local/share/modelzoo/plugins`), for example with a symbolic link:

```sh
mkdir -p ~/.local/share/modelzoo/plugins
ln -s "$PWD" ~/.local/share/modelzoo/plugins/{{NAME}}
```

Every manifest found there runs as a source of its own name. To give it a configuration,
name it in a source of the daemon's configuration file:

```yaml
sources:
  - name: {{NAME}}
    plugin: {{NAME}}
{{CONFIG_EXAMPLE}})TPL";

const char* const kRegistryWhat =
    "It serves one model from memory, `{{MODEL}}` version 1.0.0 (a greeting, `hello.txt`, and\n"
    "256 KiB of made-up weights, `weights.bin`): replace it with yours.";
const char* const kExtensionWhat =
    "At post-download (after a model is downloaded and verified, before it enters the cache)\n"
    "it rejects models with a file named `*.bad`: replace the rule with yours.";
const char* const kRegistryConfigExample =
    "    config:\n"
    "      text: \"Hi there!\\n\"     # the content of hello.txt\n"
    "```\n"
    "\n"
    "Then `modelzood` (restart it), `modelzoo plugins`, `modelzoo models`, `modelzoo pull {{MODEL}}`.\n";
const char* const kExtensionConfigExample =
    "    config:\n"
    "      suffix: \".bad\"          # the file-name suffix to reject\n"
    "```\n"
    "\n"
    "Then `modelzood` (restart it), `modelzoo plugins`, and watch `modelzoo events hook.` while\n"
    "pulling a model.\n";

}  // namespace

std::string substitute(std::string text, const std::map<std::string, std::string>& vars) {
  std::string out;
  out.reserve(text.size());
  for (std::size_t i = 0; i < text.size();) {
    if (text.compare(i, 2, "{{") == 0) {
      auto end = text.find("}}", i + 2);
      if (end != std::string::npos) {
        auto it = vars.find(text.substr(i + 2, end - i - 2));
        if (it != vars.end()) {
          out += it->second;
          i = end + 2;
          continue;
        }
      }
    }
    out += text[i++];
  }
  return out;
}

std::string class_name(const std::string& plugin_name) {
  std::string out;
  bool upper = true;
  for (char c : plugin_name) {
    if (c == '-' || c == '_') {
      upper = true;
      continue;
    }
    out += upper ? static_cast<char>(std::toupper(static_cast<unsigned char>(c))) : c;
    upper = false;
  }
  if (out.empty() || std::isdigit(static_cast<unsigned char>(out[0]))) out = "Plugin" + out;
  return out;
}

std::string python_string(const std::string& s) {
  std::string out = "\"";
  for (unsigned char c : s) {
    if (c == '"' || c == '\\') {
      out += '\\';
      out += static_cast<char>(c);
    } else if (c < 0x20 || c == 0x7f) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\x%02x", c);
      out += buf;
    } else {
      out += static_cast<char>(c);
    }
  }
  return out + "\"";
}

std::string cpp_binary_path(const std::string& name) { return "build/" + name; }

std::vector<File> render(const Params& p) {
  if (p.kind != "registry" && p.kind != "extension")
    throw std::invalid_argument("unknown plugin kind '" + p.kind + "' (registry or extension)");
  bool registry = p.kind == "registry";
  std::string major_minor = p.sdk_version.substr(0, p.sdk_version.rfind('.'));
  std::map<std::string, std::string> vars = {
      {"NAME", p.name},
      {"KIND", p.kind},
      {"CLASS", class_name(p.name)},
      {"MODEL", p.name + "/hello"},
      {"BINARY", cpp_binary_path(p.name)},
      {"PREFIX", p.prefix.empty() ? "<modelzoo's install prefix>" : p.prefix},
      {"SDK_MAJOR_MINOR", major_minor.empty() ? "0.1" : major_minor},
      {"PY_SDK_DIR", python_string(p.python_sdk)},
      {"PY_SDK_DIR_PLAIN", p.python_sdk.empty() ? "(not found when it was created)" : p.python_sdk},
      {"EXTRA_IMPORTS", registry ? "import hashlib\n" : ""},
      {"DOC", registry ? "a modelzoo registry plugin serving one small model from memory."
                       : "a modelzoo extension rejecting models with a file named *.bad."},
  };
  // Two passes: the inserted parts have placeholders of their own.
  vars["WHAT"] = substitute(registry ? kRegistryWhat : kExtensionWhat, vars);
  vars["CONFIG_EXAMPLE"] = substitute(registry ? kRegistryConfigExample : kExtensionConfigExample, vars);

  std::vector<File> files;
  if (p.lang == "cpp") {
    files.push_back({"CMakeLists.txt", substitute(kCppCMakeLists, vars)});
    files.push_back({"main.cc", substitute(registry ? kCppRegistryMain : kCppExtensionMain, vars)});
    files.push_back({"plugin.yaml", substitute(registry ? kCppRegistryManifest : kCppExtensionManifest, vars)});
    files.push_back({"README.md", substitute(kCppReadme, vars)});
    files.push_back({".gitignore", "/build/\n"});
  } else if (p.lang == "python") {
    std::string script = std::string(kPythonPrologue) + (registry ? kPythonRegistry : kPythonExtension);
    files.push_back({"plugin.py", substitute(script, vars), true});
    files.push_back({"plugin.yaml", substitute(registry ? kPythonRegistryManifest : kPythonExtensionManifest, vars)});
    files.push_back({"README.md", substitute(kPythonReadme, vars)});
    files.push_back({".gitignore", "__pycache__/\n"});
  } else {
    throw std::invalid_argument("unknown language '" + p.lang + "' (cpp or python)");
  }
  return files;
}

}  // namespace modelzoo::cli::scaffold
