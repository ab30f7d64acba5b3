// raftmq controller voters [list] | add ID | remove ID | auto ID: the controller's voters and
// learners, and the operator's choice of them (docs/cluster.md "Controller voters"). Sent as
// raftmq's own Kafka API RaftmqControllerVoters (key 10001) to the bootstrap broker, which
// forwards a choice to the controller leader like every admin call: `add` promotes a broker to
// controller voter (once it has caught up), `remove` demotes a voter to learner, `auto` hands
// the broker back to the automatic promotion. A choice is answered once the controller's
// configuration matches it, or refused with nothing changed (unknown, removed or dead broker,
// the last voter, a demotion that would cost the quorum, a change already in progress).
// Exit code: 0 ok, 1 refused / failed / not done within --timeout, 2 bad usage.
#include <cstdio>
#include <string>
#include <vector>

#include "cli/client_commands.h"

namespace mq::cli {
namespace {

constexpr std::int16_t kControllerVotersApiKey = 10001;
constexpr int kTimeoutSecondsMax = 30;  // kafka_call waits 35 s for the answer

const char* choice_name(std::int8_t choice) {
  switch (choice) {
    case 1: return "voter";
    case 2: return "learner";
    default: return "auto";
  }
}

std::string join(const std::vector<std::int32_t>& ids) {
  std::string out;
  for (std::int32_t id : ids) out += (out.empty() ? "" : ",") + std::to_string(id);
  return "[" + out + "]";
}

void print_members(const protocol::RaftmqControllerVotersResponse& r) {
  if (r.leader_id >= 0) {
    std::printf("controller leader: %d\n", r.leader_id);
  } else {
    std::printf("controller leader: none known\n");
  }
  std::vector<std::int32_t> voters, learners;
  std::size_t voters_alive = 0;
  for (const auto& m : r.members) {
    const char* role = m.voter ? "voter" : m.learner ? "learner" : "not a member";
    std::string pending;
    if (m.choice == 1 && !m.voter) pending = "  (to be promoted)";
    if (m.choice == 2 && m.voter) pending = "  (to be demoted)";
    std::printf("  broker %d: %-12s choice %-8s %s%s\n", m.broker_id, role,
                choice_name(m.choice), m.alive ? "up" : "down", pending.c_str());
    if (m.voter) {
      voters.push_back(m.broker_id);
      voters_alive += m.alive ? 1 : 0;
    }
    if (m.learner) learners.push_back(m.broker_id);
  }
  std::size_t quorum = voters.size() / 2 + 1;
  std::printf("voters %s (%zu up; a quorum is %zu)%s, learners %s\n", join(voters).c_str(),
              voters_alive, quorum, r.joint ? ", joint configuration in effect" : "",
              join(learners).c_str());
}

int usage() {
  std::fprintf(stderr,
               "usage: raftmq controller voters [list]\n"
               "       raftmq controller voters add ID [--timeout SECONDS]     promote to voter\n"
               "       raftmq controller voters remove ID [--timeout SECONDS]  demote to learner\n"
               "       raftmq controller voters auto ID      back to the automatic promotion\n"
               "  (--bootstrap host:port; --timeout 1..%d, default 20)\n",
               kTimeoutSecondsMax);
  return 2;
}

bool parse_int(const std::string& text, long min, long max, long* out) {
  try {
    std::size_t used = 0;
    long v = std::stol(text, &used);
    if (used != text.size() || v < min || v > max) return false;
    *out = v;
    return true;
  } catch (...) {
    return false;
  }
}

}  // namespace

int controller_command(Args& args) {
  const auto& words = args.positional();
  if (words.empty() || words[0] != "voters" || words.size() > 3) return usage();
  std::string action = words.size() >= 2 ? words[1] : "list";
  protocol::RaftmqControllerVotersRequest request;
  long timeout_s = 20;
  if (auto t = args.get("timeout"); t && !parse_int(*t, 1, kTimeoutSecondsMax, &timeout_s)) {
    return usage();
  }
  if (action == "list") {
    if (words.size() == 3) return usage();
    request.choice = -1;
  } else {
    long id = 0;
    if (words.size() != 3 || !parse_int(words[2], 0, 0x7fffffff, &id)) return usage();
    if (action == "add") {
      request.choice = 1;
    } else if (action == "remove") {
      request.choice = 2;
    } else if (action == "auto") {
      request.choice = 0;
    } else {
      return usage();
    }
    request.broker_id = static_cast<std::int32_t>(id);
  }
  request.timeout_ms = static_cast<std::int32_t>(timeout_s * 1000);
  std::string what = "controller voters " + action +
                     (words.size() == 3 ? " " + words[2] : std::string());
  auto answer = kafka_call(args.get_or("bootstrap", "127.0.0.1:9092"),
                           protocol::AnyRequest(std::move(request)), kControllerVotersApiKey);
  if (!answer.has_value()) {
    std::fprintf(stderr, "raftmq: %s: %s\n", what.c_str(), answer.error().to_string().c_str());
    return 1;
  }
  const auto* response = std::get_if<protocol::RaftmqControllerVotersResponse>(&*answer);
  if (response == nullptr) {
    std::fprintf(stderr, "raftmq: %s: unexpected answer\n", what.c_str());
    return 1;
  }
  if (!response->members.empty()) print_members(*response);
  if (response->error_code != 0) {
    std::fprintf(stderr, "raftmq: %s: %s (Kafka error %d)\n", what.c_str(),
                 response->error_message.value_or("refused").c_str(), response->error_code);
    return 1;
  }
  if (action == "add") std::printf("broker %s is a controller voter\n", words[2].c_str());
  if (action == "remove") std::printf("broker %s is a controller learner\n", words[2].c_str());
  if (action == "auto") {
    std::printf("broker %s: back to the automatic promotion\n", words[2].c_str());
  }
  return 0;
}

}  // namespace mq::cli
