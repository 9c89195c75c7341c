#include "modelzoo/core/resolver.h"

namespace modelzoo::core {

const SourceAnswer* Resolution::best() const {
  for (const auto& s : sources)
    if (s.metadata) return &s;
  return nullptr;
}

std::vector<const SourceAnswer*> Resolution::available() const {
  std::vector<const SourceAnswer*> out;
  for (const auto& s : sources)
    if (s.metadata) out.push_back(&s);
  return out;
}

bus::Error Resolution::failure() const {
  for (const auto& s : sources)
    if (s.error && s.error->code() != bus::ErrorCode::not_found)
      return bus::Error(s.error->code(), s.plugin.name + ": " + s.error->what());
  if (sources.empty())
    return bus::Error(bus::ErrorCode::not_found, "no source handles model '" + ref.name + "'");
  return bus::Error(bus::ErrorCode::not_found,
                    "model '" + ref.str() + "' not found in any of " + std::to_string(sources.size()) + " source(s)");
}

void resolve(const PluginManager& plugins, PluginCaller& caller, const bus::ModelRef& ref, std::uint32_t timeout_ms,
             std::function<void(Resolution)> done) {
  struct Pending {
    Resolution res;
    std::size_t outstanding = 0;
    std::function<void(Resolution)> done;
  };
  auto p = std::make_shared<Pending>();
  p->res.ref = ref;
  p->done = std::move(done);
  for (auto& rec : plugins.candidates(ref.name, "metadata")) p->res.sources.push_back({std::move(rec), {}, {}});
  p->outstanding = p->res.sources.size();
  if (p->outstanding == 0) {
    p->done(std::move(p->res));
    return;
  }
  nlohmann::json body = {{"name", ref.name}};
  if (!ref.version.empty()) body["version"] = ref.version;
  for (std::size_t i = 0; i < p->res.sources.size(); ++i) {
    caller.call_raw(p->res.sources[i].plugin.name, "metadata", body, timeout_ms, [p, i](CallResult r) {
      auto& s = p->res.sources[i];
      if (r.ok()) {
        try {
          auto md = r.raw_body.empty() ? bus::ModelMetadata::from_json(r.body)
                                       : bus::ModelMetadata::from_msgpack(r.raw_body.data(), r.raw_body.size());
          if (md.name != p->res.ref.name || (!p->res.ref.version.empty() && md.version != p->res.ref.version))
            s.error = bus::Error(bus::ErrorCode::internal, "answered for '" + md.name + ":" + md.version +
                                                               "' when asked for '" + p->res.ref.str() + "'");
          else
            s.metadata = std::move(md);
        } catch (const bus::Error& e) {
          s.error = bus::Error(bus::ErrorCode::internal, std::string("sent invalid metadata: ") + e.what());
        }
      } else {
        s.error = r.error;
      }
      if (--p->outstanding == 0) p->done(std::move(p->res));
    });
  }
}

std::string show_reply_msgpack(const Resolution& res) {
  const SourceAnswer* best = res.best();
  bus::MsgpackWriter out;
  // The keys in the order a JSON tree (nlohmann's sorted objects) encodes them.
  out.map(4);
  out.key("best");
  out.str(best->plugin.name);
  out.key("metadata");
  best->metadata->write_msgpack(out);
  out.key("model");
  out.str(res.ref.str());
  out.key("sources");
  out.array(res.sources.size());
  for (const auto& s : res.sources) {
    out.map(5);
    out.key("error");
    if (s.error) {
      out.map(2);
      out.key("code");
      out.str(bus::to_string(s.error->code()));
      out.key("message");
      out.str(s.error->what());
    } else {
      out.nil();
    }
    out.key("ok");
    out.boolean(s.metadata.has_value());
    out.key("plugin");
    out.str(s.plugin.name);
    out.key("priority");
    out.sint(s.plugin.priority);
    out.key("version");
    if (s.metadata) out.str(s.metadata->version);
    else out.nil();
  }
  return out.take();
}

namespace {
struct FailoverRun : std::enable_shared_from_this<FailoverRun> {
  std::shared_ptr<const Resolution> resolution;
  std::vector<const SourceAnswer*> order;
  std::size_t next = 0;
  Attempt attempt;
  std::function<void(FailoverOutcome)> done;
  FailoverOutcome outcome;

  void step() {
    if (next >= order.size()) {
      done(std::move(outcome));
      return;
    }
    const SourceAnswer* s = order[next++];
    auto self = shared_from_this();
    attempt(*s, [self, s](std::optional<bus::Error> err) {
      if (!err) {
        self->outcome.source = s;
        self->done(std::move(self->outcome));
        return;
      }
      self->outcome.failures.emplace_back(s->plugin.name, *err);
      self->step();
    });
  }
};
}  // namespace

void with_failover(std::shared_ptr<const Resolution> resolution, Attempt attempt,
                   std::function<void(FailoverOutcome)> done) {
  auto run = std::make_shared<FailoverRun>();
  run->order = resolution->available();
  run->resolution = std::move(resolution);
  run->attempt = std::move(attempt);
  run->done = std::move(done);
  run->step();
}

}  // namespace modelzoo::core
