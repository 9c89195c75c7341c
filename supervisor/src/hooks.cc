#include "hooks.h"

#include <sys/stat.h>

#include <algorithm>
#include <memory>
#include <set>

#include <spdlog/spdlog.h>

namespace modelzoo::supervisor {
namespace fs = std::filesystem;
using bus::Error;
using bus::ErrorCode;
using nlohmann::json;
using Clock = std::chrono::steady_clock;

namespace {

constexpr std::size_t kMaxFiles = 10000;     // in one replace
constexpr std::size_t kMaxText = 2000;       // of a reason or message kept

std::string clip(std::string s) {
  if (s.size() > kMaxText) s.resize(kMaxText);
  return s;
}

bool serves(const ExtensionView& x, const std::string& point) {
  return x.points.empty() || std::find(x.points.begin(), x.points.end(), point) != x.points.end();
}

bool handles(const ExtensionView& x, const std::string& model) {
  return std::any_of(x.handles.begin(), x.handles.end(), [&](const auto& p) { return bus::glob_match(p, model); });
}

// True when `p` lies inside `dir` (both canonical).
bool inside(const fs::path& p, const fs::path& dir) {
  auto rel = p.lexically_relative(dir);
  return !rel.empty() && *rel.begin() != ".." && rel.is_relative();
}

struct Chain {
  ExtensionDirectory& directory;
  core::PluginCaller& calls;
  core::EventSink& events;
  HookStep step;
  std::vector<ExtensionView> exts;
  std::size_t next = 0;
  HookOutcome out;
  std::function<void(HookOutcome)> done;

  Chain(ExtensionDirectory& x, core::PluginCaller& c, core::EventSink& e, HookStep s,
        std::function<void(HookOutcome)> d)
      : directory(x), calls(c), events(e), step(std::move(s)), done(std::move(d)) {}

  std::string model() const { return out.ref.str(); }

  void publish(const ExtensionView& x, const std::string& outcome, std::int64_t ms, json extra) {
    json ev = {{"extension", x.name}, {"point", step.point}, {"model", out.ref.name},
               {"version", out.ref.version}, {"outcome", outcome}, {"duration_ms", ms}};
    ev.update(extra);
    events.publish(core::topic::kExtensionHook, std::move(ev));
  }

  void fail(const ExtensionView& x, Error e, std::int64_t ms) {
    spdlog::warn("{}", e.what());
    publish(x, e.code() == ErrorCode::rejected ? "rejected" : "failed", ms,
            {{"error", bus::to_json(e)}});
    out.error = std::move(e);
    finish();
  }

  void finish() {
    auto d = std::move(done);
    d(std::move(out));
  }

  json request_body(const fs::path& output_dir) const {
    json files = json::array();
    for (const auto& f : out.files) {
      json j = {{"name", f.name}, {"size", f.size}};
      if (!f.sha256.empty()) j["sha256"] = f.sha256;
      if (!f.path.empty()) j["path"] = f.path.string();
      files.push_back(std::move(j));
    }
    json b = {{"point", step.point}, {"name", out.ref.name}, {"version", out.ref.version}, {"files", files}};
    if (!step.metadata.is_null()) b["metadata"] = step.metadata;
    if (!output_dir.empty()) b["output_dir"] = output_dir.string();
    return b;
  }

  // Applies an extension's answer. Returns the error that fails the step, if any.
  std::optional<Error> apply(const ExtensionView& x, const json& body, const fs::path& output_dir, std::string& action) {
    std::string who = "extension '" + x.name + "'";
    action = bus::get_string(body, "action");
    if (action == "continue") return std::nullopt;
    if (action == "reject") {
      std::string reason = clip(bus::get_string(body, "reason"));
      if (reason.empty()) reason = "no reason given";
      return Error(ErrorCode::rejected, who + " rejected '" + model() + "' at " + step.point + ": " + reason);
    }
    if (action == "rewrite") {
      if (step.point != bus::kPreDownload)
        return Error(ErrorCode::internal, who + " answered 'rewrite' at " + step.point + " (only at pre-download)");
      bus::ModelRef ref{bus::get_string(body, "name"), bus::get_string(body, "version")};
      if (auto why = bus::check_model_name(ref.name)) return Error(ErrorCode::internal, who + " rewrote to an invalid name: " + *why);
      if (!ref.version.empty())
        if (auto why = bus::check_version(ref.version)) return Error(ErrorCode::internal, who + " rewrote to an invalid version: " + *why);
      spdlog::info("{} rewrote '{}' to '{}'", who, model(), ref.str());
      out.ref = std::move(ref);
      return std::nullopt;
    }
    if (action == "replace") {
      if (step.point != bus::kPostDownload)
        return Error(ErrorCode::internal, who + " answered 'replace' at " + step.point + " (only at post-download)");
      auto it = body.find("files");
      if (it == body.end() || !it->is_array() || it->size() > kMaxFiles)
        return Error(ErrorCode::internal, who + " answered 'replace' without a list of at most " +
                                              std::to_string(kMaxFiles) + " files");
      std::error_code ec;
      fs::path outdir = fs::canonical(output_dir, ec);
      std::vector<StagedFile> next;
      std::set<std::string> names;
      for (const auto& f : *it) {
        std::string name = bus::get_string(f, "name"), path = bus::get_string(f, "path");
        if (auto why = bus::check_file_name(name)) return Error(ErrorCode::internal, who + " replaced a file with an invalid name: " + *why);
        if (!names.insert(name).second) return Error(ErrorCode::internal, who + " named '" + name + "' twice");
        // An input, passed on unchanged (perhaps under another name)...
        auto in = std::find_if(out.files.begin(), out.files.end(), [&](const StagedFile& s) { return !path.empty() && s.path == path; });
        if (in != out.files.end()) {
          StagedFile s = *in;
          s.name = name;
          next.push_back(std::move(s));
          continue;
        }
        // ...or a regular file it wrote in its output directory.
        struct stat st {};
        fs::path p = path;
        if (path.empty() || !p.is_absolute() || ::lstat(p.c_str(), &st) != 0 || !S_ISREG(st.st_mode) || st.st_nlink != 1)
          return Error(ErrorCode::internal, who + " replaced '" + name + "' with '" + clip(path) +
                                                "', which is not a regular file (one link, not a symlink)");
        fs::path parent = fs::canonical(p.parent_path(), ec);
        if (ec || outdir.empty() || !(parent == outdir || inside(parent, outdir)))
          return Error(ErrorCode::internal, who + " replaced '" + name + "' with '" + clip(path) +
                                                "', outside its output directory " + output_dir.string());
        next.push_back({name, p, static_cast<std::uint64_t>(st.st_size), ""});
      }
      out.files = std::move(next);
      out.changed_files = true;
      return std::nullopt;
    }
    return Error(ErrorCode::internal, who + " answered an unknown action '" + clip(action) + "'");
  }

  void advance(const std::shared_ptr<Chain>& self) {
    while (next < exts.size()) {
      const ExtensionView& x = exts[next++];
      if (!handles(x, out.ref.name)) continue;  // a rewrite may have moved the model out of its patterns
      if (!x.formats.empty() && step.point != bus::kPreDownload) {
        bool any = std::any_of(out.files.begin(), out.files.end(), [&](const StagedFile& f) {
          return std::find(x.formats.begin(), x.formats.end(), bus::file_format(f.name)) != x.formats.end();
        });
        if (!any) continue;
      }
      if (!x.ready)
        return fail(x, Error(ErrorCode::unavailable, "extension '" + x.name + "' is not running (" + x.state + "); " +
                                                         step.point + " of '" + model() + "' cannot run without it"),
                    0);
      fs::path output_dir;
      if (step.point == bus::kPostDownload) {
        output_dir = step.staging / (std::to_string(next) + "-" + x.name);
        std::error_code ec;
        fs::create_directories(output_dir, ec);
        if (ec)
          return fail(x, Error(ErrorCode::internal, "cannot create " + output_dir.string() + ": " + ec.message()), 0);
      }
      auto started = Clock::now();
      auto timeout = static_cast<std::uint32_t>(x.timeout.count());
      calls.call(x.name, "hook", request_body(output_dir), timeout,
                [self, x, output_dir, started, timeout](core::CallResult r) {
                  auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - started).count();
                  std::string where = "extension '" + x.name + "' failed at " + self->step.point + " of '" + self->model() + "': ";
                  if (!r.ok()) {
                    if (r.error->code() == ErrorCode::timeout)
                      self->directory.restart_plugin(x.name, "did not finish a hook within " + std::to_string(timeout) + " ms");
                    return self->fail(x, Error(r.error->code() == ErrorCode::rejected ? ErrorCode::internal : r.error->code(),
                                               where + r.error->what()),
                                      ms);
                  }
                  std::string action;
                  if (auto e = self->apply(x, r.body, output_dir, action)) return self->fail(x, std::move(*e), ms);
                  std::string message = clip(bus::get_string(r.body, "message"));
                  spdlog::info("[{}] {} of {}: {} in {} ms{}{}", x.name, self->step.point, self->model(), action, ms,
                               message.empty() ? "" : ": ", message);
                  json extra = json::object();
                  if (!message.empty()) extra["message"] = message;
                  self->publish(x, action, ms, extra);
                  self->out.applied.push_back({{"extension", x.name}, {"point", self->step.point}, {"action", action}});
                  self->advance(self);
                });
      return;
    }
    finish();
  }
};

}  // namespace

std::vector<ExtensionView> hooks_for(const std::vector<ExtensionView>& all, const std::string& point,
                                     const std::string& model) {
  std::vector<ExtensionView> out;
  for (const auto& x : all)
    if (serves(x, point) && handles(x, model)) out.push_back(x);
  std::stable_sort(out.begin(), out.end(), [](const auto& a, const auto& b) {
    return a.order != b.order ? a.order < b.order : a.name < b.name;
  });
  return out;
}

void run_hooks(ExtensionDirectory& extensions, core::PluginCaller& calls, core::EventSink& events, HookStep step,
               std::function<void(HookOutcome)> done) {
  auto exts = hooks_for(extensions.extensions(), step.point, step.ref.name);
  auto chain = std::make_shared<Chain>(extensions, calls, events, std::move(step), std::move(done));
  chain->exts = std::move(exts);
  chain->out.ref = chain->step.ref;
  chain->out.files = chain->step.files;
  chain->advance(chain);
}

}  // namespace modelzoo::supervisor
