#include "keys_cmd.h"

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "modelzoo/bus/curve.h"
#include "modelzoo/bus/names.h"
#include "secret_cmd.h"

namespace modelzoo::cli {

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

fs::path keys_dir(const KeysOptions& options) {
  if (!options.dir.empty()) return options.dir;
  if (const char* d = std::getenv("MODELZOO_KEYS_DIR"); d && *d) return d;
  return default_data_dir() / "keys";
}

// NAME, or a path to a key file (anything with a '/' or ending in .key/.pub).
fs::path key_file_of(const KeysOptions& options) {
  const std::string& n = options.name;
  if (n.find('/') != std::string::npos) return n;
  fs::path dir = keys_dir(options);
  if (n.size() > 4 && (n.ends_with(".key") || n.ends_with(".pub"))) return dir / n;
  std::error_code ec;
  return fs::exists(dir / (n + ".key"), ec) ? dir / (n + ".key") : dir / (n + ".pub");
}

void add_dir_option(CLI::App& cmd, KeysOptions& options) {
  cmd.add_option("--dir", options.dir, "Where the keys are (default $MODELZOO_KEYS_DIR, else <data dir>/keys)")
      ->type_name("D");
}

}  // namespace

CLI::App* add_keys_command(CLI::App& app) {
  CLI::App* keys = app.add_subcommand("keys", "CURVE keys for plugins and clients on other hosts (TCP)");
  keys->require_subcommand(1);
  return keys;
}

CLI::App* add_keys_generate_command(CLI::App& keys, KeysOptions& options) {
  CLI::App* cmd = keys.add_subcommand("generate", "Create a key pair: DIR/NAME.key (mode 0600) and DIR/NAME.pub");
  cmd->add_option("NAME", options.name, "The key's name (server, a source name, a user...)")->required();
  add_dir_option(*cmd, options);
  return cmd;
}

CLI::App* add_keys_list_command(CLI::App& keys, KeysOptions& options) {
  CLI::App* cmd = keys.add_subcommand("list", "List the keys in DIR, and the client allow-list there");
  add_dir_option(*cmd, options);
  return cmd;
}

CLI::App* add_keys_show_command(CLI::App& keys, KeysOptions& options) {
  CLI::App* cmd = keys.add_subcommand("show", "Print a key's public half (for remote_key or the client allow-list)");
  cmd->add_option("NAME", options.name, "A key's name in DIR, or a key file")->required();
  add_dir_option(*cmd, options);
  return cmd;
}

json run_keys_generate(const KeysOptions& options) {
  // The name becomes a file name: the plugin-name rules keep it to [a-z0-9._-], no path.
  if (auto why = bus::check_plugin_name(options.name)) throw bus::KeyError("key name: " + *why);
  fs::path dir = keys_dir(options);
  auto pair = bus::generate_key_pair();
  fs::path key = bus::write_key_pair(dir, options.name, pair);
  return {{"name", options.name},
          {"public_key", pair.public_key},
          {"key_file", key.string()},
          {"public_key_file", (dir / (options.name + ".pub")).string()}};
}

json run_keys_list(const KeysOptions& options) {
  fs::path dir = keys_dir(options);
  json keys = json::array();
  std::error_code ec;
  std::vector<fs::path> files;
  for (const auto& e : fs::directory_iterator(dir, ec))
    if (e.path().extension() == ".key" || e.path().extension() == ".pub") files.push_back(e.path());
  if (ec && ec != std::errc::no_such_file_or_directory) throw bus::KeyError(dir.string() + ": " + ec.message());
  std::sort(files.begin(), files.end());
  for (const auto& f : files) {
    // A pair's .pub beside its .key says nothing more.
    if (f.extension() == ".pub" && std::find(files.begin(), files.end(), fs::path(f).replace_extension(".key")) != files.end())
      continue;
    json k = {{"name", f.stem().string()}, {"file", f.string()}};
    try {
      auto kp = bus::read_key_file(f);
      k["public_key"] = kp.public_key;
      k["secret"] = !kp.secret_key.empty();
    } catch (const bus::KeyError& e) {
      k["public_key"] = "";
      k["secret"] = f.extension() == ".key";
      k["problem"] = e.what();
    }
    keys.push_back(k);
  }
  json out = {{"dir", dir.string()}, {"keys", keys}};
  if (std::ifstream in(dir / "authorized_clients"); in) {
    std::stringstream text;
    text << in.rdbuf();
    auto list = bus::parse_allow_list(text.str(), (dir / "authorized_clients").string());
    json clients = json::array();
    for (const auto& k : list.keys) clients.push_back({{"public_key", k.public_key}, {"name", k.name}});
    out["authorized_clients"] = clients;
    if (!list.problems.empty()) out["authorized_clients_problems"] = list.problems;
  }
  return out;
}

json run_keys_show(const KeysOptions& options) {
  fs::path f = key_file_of(options);
  auto kp = bus::read_key_file(f);
  return {{"name", f.stem().string()}, {"public_key", kp.public_key}, {"file", f.string()}};
}

std::string render_keys(const json& r) {
  std::ostringstream out;
  if (r.contains("keys")) {
    out << "keys in " << r.value("dir", "") << "\n";
    if (r["keys"].empty()) out << "  (none; create one with `modelzoo keys generate NAME`)\n";
    for (const auto& k : r["keys"]) {
      out << "  " << k.value("name", "") << "  " << (k.value("public_key", "").empty() ? "-" : k.value("public_key", ""))
          << "  " << (k.value("secret", false) ? "pair" : "public");
      if (k.contains("problem")) out << "  PROBLEM: " << k.value("problem", "");
      out << "\n";
    }
    if (r.contains("authorized_clients")) {
      out << "authorized clients (" << r["authorized_clients"].size() << ")\n";
      for (const auto& c : r["authorized_clients"])
        out << "  " << c.value("public_key", "") << "  " << c.value("name", "") << "\n";
    }
    return out.str();
  }
  if (r.contains("key_file"))
    return "key pair '" + r.value("name", "") + "' written to " + r.value("key_file", "") + " (public half in " +
           r.value("public_key_file", "") + ")\npublic key: " + r.value("public_key", "") + "\n";
  return r.value("public_key", "") + "\n";
}

}  // namespace modelzoo::cli
