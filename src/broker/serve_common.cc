#include <cstdio>

#include "broker/serve.h"

namespace mq::broker {

std::string serve_usage() {
  std::string out = "usage: raftmq serve [--config FILE] [--option value]...\n";
  if (!cluster_layer_available()) {
    out += "NOTE: no cluster layer in this build: serve cannot run\n";
  }
  out += "options:\n";
  BrokerConfig defaults;
  for (const OptionInfo& option : option_table()) {
    out += "  --" + option.name + "  " + option.help + " (default: " + option.get(defaults) +
           ")\n";
  }
  return out;
}

int serve_main(const std::vector<std::string>& args) {
  for (const std::string& a : args) {
    if (a == "--help" || a == "-h") {
      std::fputs(serve_usage().c_str(), stdout);
      return 0;
    }
  }
  Result<BrokerConfig> config = parse_serve_args(args);
  if (!config.has_value()) {
    std::fprintf(stderr, "raftmq serve: %s\n%s", config.error().message().c_str(),
                 serve_usage().c_str());
    return 2;
  }
  return run_serve(*config);
}

}  // namespace mq::broker
