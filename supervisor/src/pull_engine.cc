#include "pull_engine.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <map>
#include <set>

#include <spdlog/spdlog.h>

#include "background.h"
#include "disk_writer.h"
#include "modelzoo/bus/hello.h"
#include "modelzoo/core/cache.h"
#include "modelzoo/core/cache_admin.h"

namespace modelzoo::supervisor {
namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;
using bus::Error;
using bus::ErrorCode;
using bus::Message;
using nlohmann::json;
using std::chrono::duration_cast;
using std::chrono::milliseconds;

namespace {

constexpr std::uint32_t kDownloadCredit = 16;         // chunks in flight per download
constexpr std::size_t kDownloadChunk = 1u << 20;      // bytes per chunk
constexpr milliseconds kProgressInterval{100};        // to the requesting client
constexpr milliseconds kProgressEventInterval{250};   // on the event socket

std::int64_t ms_between(Clock::time_point a, Clock::time_point b) { return duration_cast<milliseconds>(b - a).count(); }

}  // namespace

struct PullEngine::Impl {
  const DaemonConfig& cfg;
  SourceDirectory& sources;
  PluginCalls& calls;
  ClientReplies& replies;
  Timers& timers;
  core::EventSink& events;
  std::unique_ptr<core::ContentStore> store;
  std::size_t removed = 0;
  struct PullJob;
  std::map<std::string, std::shared_ptr<PullJob>> pulls;  // by "pull|load <model reference>"

  // One file of a pull: received from the sources that have it, best first; a source that
  // fails mid-file hands over to the next at the offset already received and hashed.
  struct FileTransfer {
    bus::FileInfo info;
    std::uint64_t tag = 0;  // names it to the disk thread
    std::unique_ptr<core::ContentStore::Writer> writer;
    std::uint64_t call_id = 0;
    std::string plugin;     // the source of call_id
    bool done = false;
    int pending = 0;        // chunks handed to the disk thread and not yet written
    std::uint32_t credit = 0;  // chunks the source of call_id may still send unasked
    int local_fd = -1;      // a local copy's source file, open while pieces are pending
    std::weak_ptr<PullJob> job;
    std::optional<Error> disk_error;
    std::function<void()> when_drained;  // runs once pending reaches 0
  };
  std::map<std::uint64_t, std::weak_ptr<FileTransfer>> transfers;  // by tag
  std::uint64_t next_transfer_tag = 1;

  struct PullJob {
    bus::ModelRef ref;
    bool load = false;  // a `load`: also publishes model.load.* and returns the metadata
    std::vector<ClientWaiter> waiters;
    std::shared_ptr<core::Resolution> resolution;  // sources with identical files, best first
    bus::ModelMetadata md;
    std::string source;  // the source of the most recent chunk (for progress)
    std::vector<std::shared_ptr<FileTransfer>> files;  // those not cached yet
    bool post_download = false;  // extensions see the files before they are committed
    bool load_hooks_done = false;
    std::unique_ptr<core::ContentStore::Staging> staging;
    std::size_t next_file = 0, running = 0, finished = 0;
    std::vector<std::pair<std::string, Error>> failures;
    std::optional<Error> error;  // the pull failed: stop starting files
    bool disk_failed = false;    // error came from writing to the cache, not from a source
    bool answered = false;
    // Every blob this job counts as present or fetches, held from before it looks at it
    // until it has answered: `cache rm`, prune and eviction, in any process, leave them.
    std::unique_ptr<core::ContentStore::Pin> pin;
    bool derived = false;  // md.files were made by extensions: they cannot be fetched again
    int refetches = 0;     // times a file vanished before the answer and was fetched again
    // What the manifest was written with ({"source", "derived"}), once committed or found
    // cached: a `cache rm` of this very version before the answer is undone with it.
    std::optional<json> manifest;
    std::uint64_t total = 0, cached_bytes = 0, downloaded = 0;
    Clock::time_point started = Clock::now(), last_progress, last_event;
  };
  static constexpr std::size_t kParallelFiles = 4;
  static constexpr milliseconds kBusyRetry{100};  // another process holds a file: look again

  void start_pull(const ClientWaiter& w, const bus::ModelRef& ref, bool load, bool offline) {
    std::string key = (load ? "load " : "pull ") + ref.str();
    if (auto it = pulls.find(key); it != pulls.end()) {
      it->second->waiters.push_back(w);  // one transfer, every requester answered
      return;
    }
    auto job = std::make_shared<PullJob>();
    job->ref = ref;
    job->load = load;
    job->waiters.push_back(w);
    pulls[key] = job;
    if (load) events.publish(core::topic::kLoadStarted, {{"model", ref.name}, {"version", ref.version}});
    // pre-download: extensions may veto the request or rewrite it to another model.
    HookStep step{bus::kPreDownload, ref, nullptr, {}, {}};
    run_hooks(sources, calls, events, std::move(step), [this, job, offline](HookOutcome out) {
      if (out.error) {
        events.publish(core::topic::kDownloadFailed,
                       {{"model", job->ref.name}, {"version", job->ref.version}, {"error", bus::to_json(*out.error)}});
        return finish_pull(job, *out.error);
      }
      job->ref = out.ref;
      if (offline || cfg.offline) {
        // Offline: the cache alone answers; no plugin is asked anything.
        if (!serve_from_cache(job, "offline"))
          finish_pull(job, Error(ErrorCode::unavailable, "offline, and '" + job->ref.str() + "' is not in the cache"));
        return;
      }
      sources.resolve(job->ref, static_cast<std::uint32_t>(cfg.request_timeout.count()),
                   [this, job](core::Resolution res) { on_pull_resolved(job, std::move(res)); });
    });
  }

  // True when the cache holds `md` whole: its manifest lists the same files, or lists what
  // extensions made of these very files (derived.source_files).
  bool cached_derived = false;  // what cached_as found was made by extensions
  std::optional<bus::ModelMetadata> cached_as(const bus::ModelMetadata& md) {
    auto rec = store->read_manifest_record(md.name, md.version);
    if (!rec) return std::nullopt;
    auto cached = bus::ModelMetadata::from_json(rec->at("metadata"));
    json want = json::array();
    for (const auto& f : md.files) want.push_back({{"name", f.name}, {"size", f.size}, {"sha256", f.sha256}});
    auto same = [&](const json& files) {
      if (!files.is_array() || files.size() != want.size()) return false;
      for (std::size_t i = 0; i < files.size(); ++i)
        if (files[i].value("name", "") != want[i]["name"] || files[i].value("size", 0ull) != want[i]["size"] ||
            files[i].value("sha256", "") != want[i]["sha256"])
          return false;
      return true;
    };
    bool match = false;
    cached_derived = false;
    if (auto d = rec->find("derived"); d != rec->end() && d->is_object()) {
      match = same(d->value("source_files", json()));
      cached_derived = true;
    } else {
      match = same(rec->at("metadata").value("files", json()));
    }
    if (!match || !store->complete(cached)) return std::nullopt;
    return cached;
  }

  // Removes the blobs of `files` that no manifest and no other pull or load needs (pins;
  // this job's own are released first).
  void drop_blobs(const std::vector<bus::FileInfo>& files, PullJob* job, const std::set<std::string>& keep = {}) {
    std::vector<std::string> drop;
    for (const auto& f : files)
      if (!keep.count(f.sha256)) drop.push_back(f.sha256);
    if (job->pin) job->pin->release(drop);
    for (const auto& f : files)
      if (!keep.count(f.sha256) && store->remove_unreferenced_blob(f.sha256))
        spdlog::debug("removed blob {} ('{}'), which no model uses", f.sha256, f.name);
  }

  // A pin for `job`, holding every file of `md`. Returns whether all of them are present.
  bus::Result<bool> pin_files(PullJob& job, const bus::ModelMetadata& md) {
    if (!job.pin) {
      auto pin = store->pin((job.load ? "load " : "pull ") + job.ref.str());
      if (!pin) return pin.error();
      job.pin = std::move(*pin);
    }
    bool all = true;
    for (const auto& f : md.files) {
      auto held = job.pin->hold(f.sha256);
      if (!held) return held.error();
      all &= *held;
    }
    return all;
  }

  // Answers from the cache when it holds the whole model (the newest cached version when
  // none was asked for). Returns false when it does not.
  bool serve_from_cache(const std::shared_ptr<PullJob>& job, const std::string& why) {
    std::vector<std::string> versions =
        job->ref.version.empty() ? store->cached_versions(job->ref.name) : std::vector<std::string>{job->ref.version};
    for (const auto& v : versions) {
      auto rec = store->read_manifest_record(job->ref.name, v);
      if (!rec) continue;
      auto md = bus::ModelMetadata::from_json(rec->at("metadata"));
      auto pinned = pin_files(*job, md);
      if (!pinned) {
        finish_pull(job, pinned.error());
        return true;
      }
      if (!*pinned || !store->complete(md)) continue;
      job->md = md;
      job->derived = rec->contains("derived");
      job->manifest = json{{"source", rec->value("source", "")}, {"derived", rec->value("derived", json())}};
      job->total = md.total_size();
      spdlog::info("{}:{} served from the cache ({})", md.name, md.version, why);
      finish_pull(job, std::nullopt, pull_reply(*job, "cache", true));
      return true;
    }
    return false;
  }

  void finish_pull(const std::shared_ptr<PullJob>& job, const std::optional<Error>& err, json reply = {}) {
    if (job->answered) return;  // files finishing in a cascade may all reach here
    if (!err) {
      // Every file the answer names is there now, and stays while the pin holds it.
      if (auto gone = missing_files(*job); !gone.empty()) return refetch(job, gone);
    }
    if (!err && job->load && !job->load_hooks_done) return load_hooks(job, std::move(reply));
    job->answered = true;
    pulls.erase((job->load ? "load " : "pull ") + job->ref.str());
    struct Unpin {  // after the answers: until then the files stay
      PullJob& j;
      ~Unpin() { j.pin.reset(); }
    } unpin{*job};
    auto ms = ms_between(job->started, Clock::now());
    if (job->load) {
      if (err)
        events.publish(core::topic::kLoadFailed, {{"model", job->ref.name}, {"version", job->md.version.empty() ? job->ref.version : job->md.version},
                                            {"error", bus::to_json(*err)}, {"duration_ms", ms}});
      else
        events.publish(core::topic::kLoadCompleted, {{"model", job->md.name}, {"version", job->md.version},
                                              {"path", reply.value("path", std::string())}, {"duration_ms", ms}});
    }
    if (!err) {
      store->touch(job->md.name, job->md.version);
      if (job->load) reply["metadata"] = job->md.to_json();
    }
    for (const auto& w : job->waiters) {
      if (err) replies.error(w, *err);
      else replies.reply(w, reply);
    }
  }

  // pre-load, then post-load: extensions may veto handing the model over. They read the
  // files where the client will (the view).
  void load_hooks(const std::shared_ptr<PullJob>& job, json reply) {
    job->load_hooks_done = true;
    auto step_for = [this, job](const char* point) {
      HookStep step{point, {job->md.name, job->md.version}, job->md.to_json(), {}, {}};
      fs::path dir = store->view_dir(job->md.name, job->md.version);
      for (const auto& f : job->md.files) step.files.push_back({f.name, dir / f.name, f.size, f.sha256});
      return step;
    };
    run_hooks(sources, calls, events, step_for(bus::kPreLoad), [this, job, reply, step_for](HookOutcome pre) {
      if (pre.error) return finish_pull(job, *pre.error);
      run_hooks(sources, calls, events, step_for(bus::kPostLoad), [this, job, reply](HookOutcome post) {
        if (post.error) return finish_pull(job, *post.error);
        finish_pull(job, std::nullopt, reply);
      });
    });
  }

  void on_pull_resolved(const std::shared_ptr<PullJob>& job, core::Resolution res) {
    const core::SourceAnswer* best = res.best();
    if (!best) {
      // Every source is down or lacks it: a model already in the cache is still served.
      if (serve_from_cache(job, "no source has it now: " + std::string(res.failure().what()))) return;
      auto err = res.failure();
      events.publish(core::topic::kDownloadFailed,
              {{"model", job->ref.name}, {"version", job->ref.version}, {"error", bus::to_json(err)}});
      return finish_pull(job, err);
    }
    job->md = *best->metadata;
    // Fail over only to sources that have the very same files.
    auto same = std::make_shared<core::Resolution>();
    same->ref = res.ref;
    for (const auto& s : res.sources) {
      if (!s.metadata || s.metadata->version != job->md.version || s.metadata->files.size() != job->md.files.size())
        continue;
      const auto& caps = s.plugin.capabilities;
      if (std::find(caps.begin(), caps.end(), "download") == caps.end()) continue;
      bool identical = true;
      for (std::size_t i = 0; i < s.metadata->files.size(); ++i) {
        const auto &a = s.metadata->files[i], &b = job->md.files[i];
        identical &= a.name == b.name && a.size == b.size && a.sha256 == b.sha256;
      }
      if (identical) same->sources.push_back(s);
    }
    job->resolution = same;
    job->total = job->md.total_size();
    // Pinned before anything is looked at: what is seen present stays present.
    std::map<std::string, bool> present;
    job->pin.reset();
    auto pinned = pin_files(*job, job->md);
    if (!pinned) return finish_pull(job, pinned.error());
    for (const auto& f : job->md.files) present[f.sha256] = store->has_blob(f.sha256);  // held: stays so
    if (auto cached = cached_as(job->md)) {
      auto all = pin_files(*job, *cached);
      if (!all) return finish_pull(job, all.error());
      if (*all && store->complete(*cached)) {
        job->md = *cached;
        job->derived = cached_derived;
        job->total = cached->total_size();
        if (auto linked = store->link_view(job->md); !linked) return finish_pull(job, linked.error());
        return finish_pull(job, std::nullopt, pull_reply(*job, best->plugin.name, true));
      }
    }
    job->post_download = !hooks_for(sources.extensions(), bus::kPostDownload, job->md.name).empty();
    std::set<std::string> queued;  // a model may list the same content twice
    for (const auto& f : job->md.files) {
      if (present[f.sha256] || !queued.insert(f.sha256).second) {
        job->cached_bytes += f.size;
        continue;
      }
      auto t = std::make_shared<FileTransfer>();
      t->info = f;
      t->tag = next_transfer_tag++;
      t->job = job;
      transfers[t->tag] = t;
      job->files.push_back(std::move(t));
    }
    job->source = best->plugin.name;
    if (job->files.empty()) {
      if (job->post_download) return post_download(job);
      return complete_pull(job, best->plugin.name, true);
    }
    // The manifest is written only once every file is in (complete_pull): the pin keeps
    // this pull's blobs from prune meanwhile, and a daemon killed now leaves no manifest
    // that lists files the cache lacks.
    if (auto no_room = make_room(*job, nullptr)) {
      events.publish(core::topic::kDownloadFailed,
                     {{"model", job->md.name}, {"version", job->md.version}, {"error", bus::to_json(*no_room)}});
      return finish_pull(job, *no_room);
    }
    events.publish(core::topic::kDownloadStarted, {{"model", job->md.name},
                                            {"version", job->md.version},
                                            {"plugin", best->plugin.name},
                                            {"files", job->files.size()},
                                            {"total_bytes", job->total}});
    start_files(job);
  }

  // The bytes this job still has to write (its files less what their partials hold).
  core::SpaceRequest space_request(const PullJob& job) {
    core::SpaceRequest r;
    for (const auto& t : job.files) {
      if (t->done) continue;
      r.own_partials.insert(t->info.sha256);
      std::error_code ec;
      auto have = fs::file_size(store->root() / "tmp" / (t->info.sha256 + ".partial"), ec);
      if (ec) have = 0;
      r.bytes += t->info.size - std::min<std::uint64_t>(have, t->info.size);
    }
    r.keep_models.insert(job.md.name + ":" + job.md.version);
    return r;
  }

  // Makes room for what `job` still has to write (core::make_room: idle partials, unused
  // blobs, and least recently used models when cache.max_size / cache.min_free are set).
  // Returns the error to fail it with when it does not fit; `outcome` receives the figures.
  std::optional<Error> make_room(PullJob& job, core::SpaceOutcome* outcome) {
    core::SpaceOutcome out;
    try {
      out = core::make_room(store->root(), space_request(job), {cfg.cache_max_size, cfg.cache_min_free});
    } catch (const Error& e) {
      spdlog::warn("pull {}:{}: cannot check the free space: {}", job.md.name, job.md.version, e.what());
      return std::nullopt;  // the writes will tell
    }
    if (out.bytes_freed > 0) {
      spdlog::info("made room for {}:{}: freed {} ({} idle partials, {} unused blobs, {} models evicted{})", job.md.name,
                   job.md.version, core::format_size(out.bytes_freed), out.partials_removed, out.blobs_removed,
                   out.evicted.size(), out.evicted.empty() ? "" : ": least recently used first");
      events.publish(core::topic::kCacheReclaimed, {{"model", job.md.name},
                                                    {"version", job.md.version},
                                                    {"bytes_freed", out.bytes_freed},
                                                    {"partials_removed", out.partials_removed},
                                                    {"blobs_removed", out.blobs_removed},
                                                    {"evicted", out.evicted},
                                                    {"free_bytes", out.free},
                                                    {"needed_bytes", out.needed}});
    }
    if (outcome) *outcome = out;
    if (out.ok()) return std::nullopt;
    return Error(ErrorCode::unavailable,
                 "not enough space in the cache for '" + job.md.name + ":" + job.md.version + "': " + out.describe());
  }

  // The files of `job` whose blob is gone (removed by something that does not honour pins:
  // `cache verify --remove-corrupt`, a user's rm), after relinking the view once.
  std::vector<bus::FileInfo> missing_files(const PullJob& job) {
    // A `cache rm` of this very version since the commit: the pull wins, manifest and all,
    // or the model it answers with would be uncached and its blobs orphans.
    if (job.manifest && !store->read_manifest_record(job.md.name, job.md.version)) {
      if (auto written = store->write_manifest(job.md, job.manifest->value("source", ""), job.manifest->value("derived", json()));
          !written)
        spdlog::warn("pull {}:{}: {}", job.md.name, job.md.version, written.error().what());
    }
    if (store->complete(job.md)) return {};
    std::vector<bus::FileInfo> gone;
    for (const auto& f : job.md.files) {
      // A `cache rm` of another model with this blob may have it aside while it checks the
      // pins; it would put it back, having seen ours.
      if (job.pin) job.pin->recover(f.sha256);
      std::error_code ec;
      auto size = fs::file_size(store->blob_path(f.sha256), ec);
      if (ec || size != f.size) gone.push_back(f);
    }
    // Only links: a `cache rm` of this very version meanwhile; the pull wins and links them
    // again. Should another rm remove them once more, that one counts as after the answer
    // (every blob is there, held by the pin): fetching again would not help it.
    if (gone.empty()) {
      if (auto linked = store->link_view(job.md); !linked)
        spdlog::warn("pull {}:{}: {}", job.md.name, job.md.version, linked.error().what());
    }
    return gone;
  }

  // A file vanished between the start of the pull and its answer: fetch it again (a few
  // times at most), never answer without it.
  void refetch(const std::shared_ptr<PullJob>& job, const std::vector<bus::FileInfo>& gone) {
    std::string names;
    for (const auto& f : gone) names += (names.empty() ? "'" : ", '") + f.name + "'";
    if (job->derived || !job->resolution || job->refetches >= 3) {
      std::string why = job->derived ? "made by extensions, it cannot be fetched again"
                        : !job->resolution ? "no source was asked (offline or every source down)"
                                           : "it vanished " + std::to_string(job->refetches) + " times";
      return finish_pull(job, Error(ErrorCode::unavailable, names + " of '" + job->md.name + ":" + job->md.version +
                                                                "' left the cache before the pull could answer (" +
                                                                why + "); pull again"));
    }
    job->refetches++;
    spdlog::warn("pull {}:{}: {} left the cache before the answer; fetching again", job->md.name, job->md.version, names);
    std::set<std::string> queued;
    for (const auto& f : gone) {
      if (!queued.insert(f.sha256).second) continue;
      if (job->pin) {
        if (auto held = job->pin->hold(f.sha256); !held) return finish_pull(job, held.error());
      }
      auto t = std::make_shared<FileTransfer>();
      t->info = f;
      t->tag = next_transfer_tag++;
      t->job = job;
      transfers[t->tag] = t;
      job->files.push_back(std::move(t));
    }
    job->post_download = false;  // the extensions saw these very bytes (same sha256)
    start_files(job);
  }

  // Commits the model (manifest, view), runs `after_commit`, and answers.
  void complete_pull(const std::shared_ptr<PullJob>& job, const std::string& source, bool cached,
                     const json& derived = nullptr, const std::function<void()>& after_commit = {}) {
    if (auto written = store->write_manifest(job->md, source, derived); !written)
      return finish_pull(job, written.error());
    job->manifest = json{{"source", source}, {"derived", derived}};
    if (auto linked = store->link_view(job->md); !linked) return finish_pull(job, linked.error());
    if (after_commit) after_commit();
    if (!cached) {
      auto ms = std::max<std::int64_t>(1, ms_between(job->started, Clock::now()));
      events.publish(core::topic::kDownloadCompleted,
              {{"model", job->md.name}, {"version", job->md.version}, {"plugin", source},
               {"bytes", fetched_bytes(*job)}, {"bytes_transferred", job->downloaded}, {"duration_ms", ms},
               {"bytes_per_second", fetched_bytes(*job) * 1000 / static_cast<std::uint64_t>(ms)},
               {"failovers", job->failures.size()}});
    }
    finish_pull(job, std::nullopt, pull_reply(*job, source, cached));
  }

  // Starts files until kParallelFiles are running; finishes the job when all are done.
  void start_files(const std::shared_ptr<PullJob>& job) {
    while (!job->error && job->running < kParallelFiles && job->next_file < job->files.size()) {
      auto t = job->files[job->next_file++];
      job->running++;
      start_file(job, t);
    }
    if (job->running > 0) return;
    if (job->error) {
      if (job->disk_failed) {  // name the space, and free what is idle so the next pull is not wedged
        core::SpaceOutcome room;
        if (make_room(*job, &room))
          job->error = Error(job->error->code(), std::string(job->error->what()) + "; " + room.describe());
      }
      events.publish(core::topic::kDownloadFailed,
              {{"model", job->md.name}, {"version", job->md.version}, {"error", bus::to_json(*job->error)}});
      return finish_pull(job, job->error);
    }
    if (job->finished == job->files.size()) {
      if (job->post_download) return post_download(job);
      complete_pull(job, job->source, false);
    }
  }

  // post-download: every file is a verified blob; the extensions see them (and may replace
  // them) before the model is committed. A rejection removes the fetched blobs; a failure of
  // an extension keeps them (orphans until prune) so a retry need not fetch them again.
  void post_download(const std::shared_ptr<PullJob>& job) {
    auto staging = store->begin_staging();
    if (!staging) return finish_pull(job, staging.error());
    job->staging = std::move(*staging);
    HookStep step{bus::kPostDownload, {job->md.name, job->md.version}, job->md.to_json(), {}, job->staging->dir()};
    for (const auto& f : job->md.files) step.files.push_back({f.name, store->blob_path(f.sha256), f.size, f.sha256});
    run_hooks(sources, calls, events, std::move(step), [this, job](HookOutcome out) {
      if (out.error) {
        if (out.error->code() == ErrorCode::rejected) drop_blobs(job->md.files, job.get());
        job->staging.reset();
        events.publish(core::topic::kDownloadFailed,
                       {{"model", job->md.name}, {"version", job->md.version}, {"error", bus::to_json(*out.error)}});
        return finish_pull(job, *out.error);
      }
      if (!out.changed_files) {
        job->staging.reset();
        return complete_pull(job, job->source, job->files.empty());
      }
      // New files are hashed and moved into the blobs off the loop (they may be large).
      auto result = std::make_shared<std::pair<std::vector<bus::FileInfo>, std::optional<Error>>>();
      auto files = out.files;
      core::ContentStore::Pin* pin = job->pin.get();  // lives as long as the job, which waits for this
      background->submit(
          [this, files, result, pin] {
            std::map<fs::path, bus::FileInfo> adopted;  // one file may be listed under two names
            for (const auto& f : files) {
              if (!f.sha256.empty()) {
                result->first.emplace_back(f.name, f.size, f.sha256);
                continue;
              }
              auto it = adopted.find(f.path);
              if (it == adopted.end()) {
                auto info = store->adopt(f.path, f.name, pin);
                if (!info) {
                  result->second = info.error();
                  return;
                }
                it = adopted.emplace(f.path, *info).first;
              }
              result->first.emplace_back(f.name, it->second.size, it->second.sha256);
            }
          },
          [this, job, result, applied = out.applied] {
            job->staging.reset();
            if (result->second) {
              events.publish(core::topic::kDownloadFailed, {{"model", job->md.name},
                                                            {"version", job->md.version},
                                                            {"error", bus::to_json(*result->second)}});
              return finish_pull(job, *result->second);
            }
            json source_files = json::array();
            for (const auto& f : job->md.files)
              source_files.push_back({{"name", f.name}, {"size", f.size}, {"sha256", f.sha256}});
            auto original = job->md.files;
            job->md.files = result->first;
            job->derived = true;
            for (const auto& f : job->md.files) {  // adopt held the new ones; these may be inputs kept as they were
              if (auto held = job->pin->hold(f.sha256); !held) return finish_pull(job, held.error());
            }
            job->total = job->md.total_size();
            json derived = {{"source_files", source_files}, {"extensions", applied}};
            std::set<std::string> keep;
            for (const auto& f : job->md.files) keep.insert(f.sha256);
            complete_pull(job, job->source, job->files.empty(), derived,
                          [&] { drop_blobs(original, job.get(), keep); });  // the sources of what replaced them
          });
    });
  }

  void file_finished(const std::shared_ptr<PullJob>& job, const std::shared_ptr<FileTransfer>& t,
                     std::optional<Error> err) {
    if (t->pending > 0) {  // the disk threads still use this writer: wait
      // A pending local copy already has a continuation, which ends the file itself.
      if (!t->when_drained) t->when_drained = [this, job, t, err] { file_finished(job, t, err); };
      return;
    }
    transfers.erase(t->tag);
    t->writer.reset();  // releases the lock; an unfinished partial stays for resume
    job->running--;
    if (err && !job->error) {
      job->error = *err;
      // Stop the other files now; their partials are kept for the next attempt.
      for (const auto& other : job->files)
        if (other->call_id) {
          calls.cancel(other->call_id);
          calls.complete(other->call_id, {json(), Error(ErrorCode::unavailable, "another file of the pull failed")});
        }
    }
    if (!err) {
      t->done = true;
      job->finished++;
    }
    start_files(job);
  }

  void start_file(const std::shared_ptr<PullJob>& job, const std::shared_ptr<FileTransfer>& t) {
    if (job->error) return file_finished(job, t, job->error);
    if (store->has_blob(t->info.sha256)) return file_finished(job, t, std::nullopt);  // another process got it
    auto writer = store->begin(t->info);
    if (!writer) return file_finished(job, t, writer.error());
    t->writer = std::move(*writer);
    if (!t->writer) {  // another process is receiving this very file: wait for it
      timers.at(Clock::now() + kBusyRetry, [this, job, t] { start_file(job, t); });
      return;
    }
    if (t->writer->offset() > 0)
      spdlog::info("resuming '{}' of {}:{} at byte {}", t->info.name, job->md.name, job->md.version, t->writer->offset());
    if (local_copy(job, t)) return;
    stream_file(job, t);
  }

  // A file a source names by local_path, inside a directory the configuration trusts for
  // that source: its canonical path and the source, or nullopt.
  std::optional<std::pair<fs::path, std::string>> trusted_local_path(const PullJob& job, const FileTransfer& t) {
    for (const auto& s : job.resolution->sources) {
      auto trusted = sources.local_read(s.plugin.name);
      if (trusted.empty() || !s.metadata) continue;
      for (const auto& f : s.metadata->files) {
        if (f.name != t.info.name || f.local_path.empty()) continue;
        std::error_code ec;
        fs::path real = fs::canonical(f.local_path, ec);
        if (ec) continue;
        for (const auto& dir : trusted) {
          fs::path root = fs::canonical(dir, ec);
          if (ec) continue;
          auto rel = real.lexically_relative(root);
          if (!rel.empty() && *rel.begin() != ".." && rel.is_relative()) return std::make_pair(real, s.plugin.name);
        }
      }
    }
    return std::nullopt;
  }

  // Copies the file from a trusted local path inside the kernel while the hashing thread
  // reads it; the usual size and sha256 check decides. Returns false when there is no such
  // path (stream instead); on any failure it falls back to streaming by itself.
  bool local_copy(const std::shared_ptr<PullJob>& job, const std::shared_ptr<FileTransfer>& t) {
    auto local = trusted_local_path(*job, *t);
    if (!local) return false;
    int fd = ::open(local->first.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    struct stat st {};
    if (fd < 0 || ::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || static_cast<std::uint64_t>(st.st_size) != t->info.size) {
      if (fd >= 0) ::close(fd);
      spdlog::info("'{}' at {} is not as declared; streaming it instead", t->info.name, local->first.string());
      return false;
    }
    spdlog::info("copying '{}' of {}:{} from {} (local to the daemon)", t->info.name, job->md.name, job->md.version,
                 local->first.string());
    job->source = local->second;
    t->plugin = local->second;
    t->local_fd = fd;
    constexpr std::uint64_t kPiece = 8u << 20;
    for (std::uint64_t off = t->writer->size(); off < t->info.size; off += kPiece) {
      auto n = static_cast<std::size_t>(std::min<std::uint64_t>(kPiece, t->info.size - off));
      t->writer->reserve(n);
      t->pending++;
      disk->submit_copy(t->tag, t->writer.get(), fd, off, n);
    }
    auto done = [this, job, t] {
      ::close(t->local_fd);
      t->local_fd = -1;
      if (job->error) return file_finished(job, t, *job->error);
      std::string why;
      if (t->disk_error) {
        why = t->disk_error->what();
        t->disk_error.reset();
        t->writer->discard();
      } else if (auto blob = t->writer->commit()) {
        return file_finished(job, t, std::nullopt);
      } else {
        why = blob.error().what();  // commit removed the partial
      }
      spdlog::warn("local copy of '{}' failed ({}); streaming it instead", t->info.name, why);
      t->writer.reset();
      stream_file(job, t);
    };
    if (t->pending == 0) done();  // a resumed partial already held every byte
    else t->when_drained = std::move(done);
    return true;
  }

  void stream_file(const std::shared_ptr<PullJob>& job, const std::shared_ptr<FileTransfer>& t) {
    core::with_failover(
        job->resolution,
        [this, job, t](const core::SourceAnswer& src, std::function<void(std::optional<Error>)> finish) {
          if (job->error) return finish(*job->error);
          download_file(job, t, src.plugin.name, std::move(finish));
        },
        [this, job, t](core::FailoverOutcome out) {
          for (auto& f : out.failures) job->failures.push_back(f);
          if (out.source) return file_finished(job, t, std::nullopt);
          if (t->disk_error) return file_finished(job, t, *t->disk_error);  // not the sources' fault
          std::string msg = "every source failed for '" + t->info.name + "' of '" + job->md.name + ":" + job->md.version + "':";
          for (const auto& [p, e] : out.failures) msg += " " + p + ": " + e.what() + ";";
          ErrorCode code = out.failures.size() == 1 ? out.failures[0].second.code() : ErrorCode::unavailable;
          file_finished(job, t, Error(code, msg));
        });
  }

  // Bytes of the files this pull had to fetch (the transfer may have moved more: failed attempts).
  static std::uint64_t fetched_bytes(const PullJob& job) {
    std::uint64_t n = 0;
    for (const auto& f : job.files) n += f->info.size;
    return n;
  }

  json pull_reply(const PullJob& job, const std::string& source, bool cached) {
    json files = json::array();
    fs::path dir = store->view_dir(job.md.name, job.md.version);
    for (const auto& f : job.md.files)
      files.push_back({{"name", f.name}, {"size", f.size}, {"sha256", f.sha256}, {"path", (dir / f.name).string()}});
    return {{"name", job.md.name},       {"version", job.md.version},
            {"source", source},          {"path", dir.string()},
            {"files", files},            {"bytes_downloaded", job.downloaded},
            {"cached", cached},          {"duration_ms", ms_between(job.started, Clock::now())}};
  }

  void send_progress(PullJob& job, const FileTransfer& t, bool force) {
    auto now = Clock::now();
    bool to_clients = force || now - job.last_progress >= kProgressInterval;
    bool to_events = force || now - job.last_event >= kProgressEventInterval;
    if (!to_clients && !to_events) return;
    std::uint64_t present = job.cached_bytes;
    for (const auto& f : job.files) present += f->done ? f->info.size : (f->writer ? f->writer->size() : 0);
    auto elapsed = std::max<std::int64_t>(1, ms_between(job.started, now));
    json p = {{"model", job.md.name},
              {"version", job.md.version},
              {"file", t.info.name},
              {"file_bytes", t.writer ? t.writer->size() : 0},
              {"file_size", t.info.size},
              {"bytes", present},
              {"total_bytes", job.total},
              {"bytes_per_second", job.downloaded * 1000 / static_cast<std::uint64_t>(elapsed)},
              {"source", job.source}};  // client protocol: "source"; events: "plugin"
    if (to_clients) {
      job.last_progress = now;
      for (const auto& w : job.waiters) replies.progress(w, p);
    }
    if (to_events) {
      job.last_event = now;
      p["plugin"] = p["source"];
      p.erase("source");
      events.publish(core::topic::kDownloadProgress, std::move(p));
    }
  }

  // Streams one file from `plugin`, from the writer's offset, under credit flow control.
  void download_file(const std::shared_ptr<PullJob>& job, const std::shared_ptr<FileTransfer>& t,
                     const std::string& plugin, std::function<void(std::optional<Error>)> finish) {
    // A failed source's last chunks may still be with the disk threads: its writer's size
    // counts them already, but nothing may commit, discard or close it before they are
    // written (committing early failed the hash and closed the partial under the writing
    // thread: "Bad file descriptor", found by tests/chaos).
    if (t->pending > 0) {
      t->when_drained = [this, job, t, plugin, finish] { download_file(job, t, plugin, finish); };
      return;
    }
    if (!t->writer) {
      auto writer = store->begin(t->info);
      if (!writer) return finish(writer.error());
      t->writer = std::move(*writer);
      if (!t->writer) return finish(Error(ErrorCode::unavailable, "'" + t->info.name + "' is being received by another process"));
    }
    job->source = plugin;
    if (t->writer->size() == t->info.size) {
      // An earlier attempt received every byte but never committed (it died first).
      auto blob = t->writer->commit();
      if (blob) return finish(std::nullopt);
      spdlog::warn("pull {}:{}: complete partial refused: {}", job->md.name, job->md.version, blob.error().what());
      {
        auto writer = store->begin(t->info);  // discarded: start the file over from this source
        if (!writer) return finish(writer.error());
        t->writer = std::move(*writer);
        if (!t->writer) return finish(Error(ErrorCode::unavailable, "'" + t->info.name + "' is being received by another process"));
      }
    }
    send_progress(*job, *t, true);
    json body = {{"name", job->md.name}, {"version", job->md.version}, {"file", t->info.name},
                 {"offset", t->writer->size()}, {"credit", kDownloadCredit}, {"chunk_size", kDownloadChunk}};
    t->credit = kDownloadCredit;  // a new call: the window of its request
    auto call_id = std::make_shared<std::uint64_t>(0);
    *call_id = calls.call_stream(
        plugin, "download", body, static_cast<std::uint32_t>(cfg.download_stall_timeout.count()),
        [this, job, t, call_id, plugin](Message& m) -> std::optional<Error> {
          const bus::FileInfo& file = t->info;
          // Flow control is enforced, not trusted: memory per transfer stays bounded.
          if (t->credit == 0) return Error(ErrorCode::internal, "sent a chunk of '" + file.name + "' without credit");
          if (m.data.size() > kDownloadChunk || m.data.size() == 0)
            return Error(ErrorCode::internal, "sent a chunk of " + std::to_string(m.data.size()) + " bytes of '" +
                                                  file.name + "' (1 to " + std::to_string(kDownloadChunk) + " allowed)");
          --t->credit;
          auto offset = bus::get_uint(m.body, "offset");
          if (!offset) return Error(ErrorCode::internal, "sent a chunk of '" + file.name + "' without an offset");
          if (*offset != t->writer->size())
            return Error(ErrorCode::internal, "sent '" + file.name + "' out of order (offset " + std::to_string(*offset) +
                                                  ", expected " + std::to_string(t->writer->size()) + ")");
          if (t->writer->size() + m.data.size() > file.size)
            return Error(ErrorCode::internal, "sent more bytes of '" + file.name + "' than its metadata declares (" +
                                                  std::to_string(file.size) + ")");
          if (t->disk_error) return *t->disk_error;
          // The disk threads hash and store it, in order; credit returns once both are done.
          std::uint64_t at = t->writer->reserve(m.data.size());
          t->pending++;
          job->downloaded += m.data.size();
          disk->submit(t->tag, *call_id, t->writer.get(), at, std::move(m.data));
          send_progress(*job, *t, false);
          return std::nullopt;
        },
        [this, job, t, finish](core::CallResult r) {
          t->call_id = 0;
          if (!r.ok()) return finish(t->disk_error ? *t->disk_error : Error(r.error->code(), r.error->what()));
          if (t->pending > 0) {  // commit only what is on disk
            t->when_drained = [this, job, t, finish] { end_of_file(job, t, finish); };
            return;
          }
          end_of_file(job, t, finish);
        });
    t->call_id = *call_id;
    t->plugin = plugin;
  }

  void end_of_file(const std::shared_ptr<PullJob>& job, const std::shared_ptr<FileTransfer>& t,
                   const std::function<void(std::optional<Error>)>& finish) {
    if (t->disk_error) return finish(*t->disk_error);
    if (t->writer->size() != t->info.size)
      return finish(Error(ErrorCode::internal, "ended '" + t->info.name + "' after " +
                                                   std::to_string(t->writer->size()) + " of " +
                                                   std::to_string(t->info.size) + " bytes"));
    if (auto blob = t->writer->commit(); !blob) {
      spdlog::warn("pull {}:{}: {}", job->md.name, job->md.version, blob.error().what());
      t->writer.reset();  // the partial is gone: a next source starts this file from zero
      return finish(blob.error());
    }
    finish(std::nullopt);
  }

  // Finished disk writes: return credit to the plugin that sent the chunk, or fail the file.
  void on_disk_writes() {
    for (auto& d : disk->take()) {
      auto it = transfers.find(d.transfer);
      auto t = it == transfers.end() ? nullptr : it->second.lock();
      if (!t) continue;
      t->pending--;
      if (d.call == 0) {  // a piece of a local copy: its continuation decides
        if (d.error && !t->disk_error) t->disk_error = d.error;
        if (auto job = t->job.lock(); job && !d.error) {
          job->downloaded += d.bytes;
          send_progress(*job, *t, false);
        }
        if (t->pending == 0 && t->when_drained) std::exchange(t->when_drained, nullptr)();
        continue;
      }
      if (d.error && !t->disk_error) {
        spdlog::error("pull: {}", d.error->what());
        t->disk_error = d.error;
        for (auto& [key, job] : pulls)  // a disk problem is no source's fault: stop the pull
          for (const auto& f : job->files)
            if (f == t && !job->error) {
              job->error = d.error;
              job->disk_failed = true;
            }
        if (t->call_id) {
          calls.cancel(t->call_id);
          calls.complete(t->call_id, {json(), *d.error});
        }
      } else if (!d.error && d.call == t->call_id) {
        ++t->credit;  // granted: one more chunk may come
        calls.credit(d.call, t->plugin, 1);
      }
      if (t->pending == 0 && t->when_drained) std::exchange(t->when_drained, nullptr)();
    }
  }

  // Declared last: it stops -- finishing its queued work -- before the writers it uses go.
  std::unique_ptr<DiskWriter> disk = std::make_unique<DiskWriter>();
  std::unique_ptr<Background> background = std::make_unique<Background>();

  Impl(const DaemonConfig& c, SourceDirectory& s, PluginCalls& p, ClientReplies& r, Timers& t, core::EventSink& e)
      : cfg(c), sources(s), calls(p), replies(r), timers(t), events(e) {
    store = std::make_unique<core::ContentStore>(cfg.cache_dir);
    removed = store->clean_partials(cfg.partial_retention);
  }
};

PullEngine::PullEngine(const DaemonConfig& cfg, SourceDirectory& sources, PluginCalls& calls, ClientReplies& replies,
                       Timers& timers, core::EventSink& events)
    : impl_(std::make_unique<Impl>(cfg, sources, calls, replies, timers, events)) {}
PullEngine::~PullEngine() = default;

void PullEngine::start(const ClientWaiter& w, const bus::ModelRef& ref, bool load, bool offline) {
  impl_->start_pull(w, ref, load, offline);
}
int PullEngine::disk_fd() const { return impl_->disk->fd(); }
void PullEngine::on_disk_writes() { impl_->on_disk_writes(); }
int PullEngine::background_fd() const { return impl_->background->fd(); }
void PullEngine::on_background() { impl_->background->run_finished(); }
std::size_t PullEngine::removed_partials() const { return impl_->removed; }

void PullEngine::abort_all(const Error& why) {
  for (auto& [_, job] : impl_->pulls)
    for (const auto& w : job->waiters) impl_->replies.error(w, why);
  impl_->pulls.clear();
}

}  // namespace modelzoo::supervisor
