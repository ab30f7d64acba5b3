// raftmq partition move|reassignments and raftmq broker decommission: partition reassignment
// through the Kafka API (AlterPartitionReassignments / ListPartitionReassignments, KIP-455).
// librdkafka 2.0 has no client API for these, so they are sent as raw Kafka requests (our
// generated codec) over one blocking TCP connection to a bootstrap broker; any broker accepts
// them (non-controllers forward them to the controller leader). Metadata (current replicas,
// live brokers) comes from librdkafka.
#include <arpa/inet.h>
#include <netdb.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <map>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "cli/client_commands.h"
#include "cli/rdkafka_util.h"
#include "protocol/headers.h"

namespace mq::cli {
namespace {

constexpr int kTimeoutMs = 30000;

}  // namespace

// One request/response over a fresh connection to the first bootstrap broker.
Result<protocol::AnyResponse> kafka_call(const std::string& bootstrap,
                                         const protocol::AnyRequest& request, std::int16_t api_key) {
  std::string first = bootstrap.substr(0, bootstrap.find(','));
  auto colon = first.rfind(':');
  if (colon == std::string::npos) return Status::invalid_argument("bootstrap must be host:port");
  std::string host = first.substr(0, colon), port = first.substr(colon + 1);
  addrinfo hints{};
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* found = nullptr;
  if (getaddrinfo(host.c_str(), port.c_str(), &hints, &found) != 0 || found == nullptr) {
    return Status::invalid_argument("cannot resolve " + first);
  }
  int fd = ::socket(found->ai_family, SOCK_STREAM, 0);
  timeval tv{kTimeoutMs / 1000 + 5, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
  bool connected = ::connect(fd, found->ai_addr, found->ai_addrlen) == 0;
  freeaddrinfo(found);
  auto fail = [fd](std::string what) {
    ::close(fd);
    return Status::io_error(std::move(what));
  };
  if (!connected) return fail("cannot connect to " + first);
  protocol::RequestHeader header;
  header.request_api_key = api_key;
  header.request_api_version = 0;
  header.correlation_id = 1;
  header.client_id = std::string("raftmq-cli");
  Buffer frame;
  MQ_RETURN_IF_ERROR(protocol::encode_request_frame(header, request, &frame));
  for (std::size_t sent = 0; sent < frame.size();) {
    ssize_t n = ::send(fd, frame.data() + sent, frame.size() - sent, MSG_NOSIGNAL);
    if (n <= 0) return fail("send to " + first + " failed");
    sent += static_cast<std::size_t>(n);
  }
  auto read_exact = [fd](std::uint8_t* dst, std::size_t n) {
    for (std::size_t got = 0; got < n;) {
      ssize_t r = ::recv(fd, dst + got, n - got, 0);
      if (r <= 0) return false;
      got += static_cast<std::size_t>(r);
    }
    return true;
  };
  std::uint8_t prefix[4];
  if (!read_exact(prefix, 4)) return fail("no answer from " + first);
  std::uint32_t size = (std::uint32_t{prefix[0]} << 24) | (std::uint32_t{prefix[1]} << 16) |
                       (std::uint32_t{prefix[2]} << 8) | prefix[3];
  if (size > (64u << 20)) return fail("oversized answer from " + first);
  Buffer payload(size);
  if (!read_exact(payload.data(), size)) return fail("truncated answer from " + first);
  ::close(fd);
  std::int32_t correlation = 0;
  return protocol::decode_response(payload.view(), api_key, 0, &correlation);
}

namespace {

struct PartitionView {
  std::vector<std::int32_t> replicas;
  std::vector<std::int32_t> isr;
  std::int32_t leader = -1;
};
struct ClusterView {
  std::set<std::int32_t> brokers;
  std::map<std::int32_t, std::string> addresses;  // id -> host:port
  std::map<std::pair<std::string, std::int32_t>, PartitionView> partitions;
};

bool load_view(rd_kafka_t* rk, ClusterView* view) {
  const rd_kafka_metadata_t* md = nullptr;
  rd_kafka_resp_err_t err = rd_kafka_metadata(rk, 1, nullptr, &md, 10000);
  if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
    std::fprintf(stderr, "raftmq: metadata: %s\n", rd_kafka_err2str(err));
    return false;
  }
  *view = ClusterView{};
  for (int b = 0; b < md->broker_cnt; ++b) {
    view->brokers.insert(md->brokers[b].id);
    view->addresses[md->brokers[b].id] =
        std::string(md->brokers[b].host) + ":" + std::to_string(md->brokers[b].port);
  }
  for (int t = 0; t < md->topic_cnt; ++t) {
    const rd_kafka_metadata_topic_t& topic = md->topics[t];
    for (int p = 0; p < topic.partition_cnt; ++p) {
      const rd_kafka_metadata_partition_t& part = topic.partitions[p];
      PartitionView v;
      v.leader = part.leader;
      v.replicas.assign(part.replicas, part.replicas + part.replica_cnt);
      v.isr.assign(part.isrs, part.isrs + part.isr_cnt);
      view->partitions[{topic.topic, part.id}] = std::move(v);
    }
  }
  rd_kafka_metadata_destroy(md);
  return true;
}

// Sends one AlterPartitionReassignments; prints each partition's outcome. 0 when all succeeded.
int reassign(Args& args, const std::map<std::pair<std::string, std::int32_t>,
                                         std::vector<std::int32_t>>& moves) {
  protocol::AlterPartitionReassignmentsRequest request;
  request.timeout_ms = kTimeoutMs;
  std::map<std::string, std::size_t> topic_index;
  for (const auto& [tp, replicas] : moves) {
    auto [it, added] = topic_index.emplace(tp.first, request.topics.size());
    if (added) request.topics.push_back({tp.first, {}});
    request.topics[it->second].partitions.push_back({tp.second, replicas});
  }
  auto answer = kafka_call(args.get_or("bootstrap", "127.0.0.1:9092"),
                           protocol::AnyRequest(std::move(request)), 45);
  if (!answer.has_value()) {
    std::fprintf(stderr, "raftmq: %s\n", answer.error().to_string().c_str());
    return 1;
  }
  const auto* response = std::get_if<protocol::AlterPartitionReassignmentsResponse>(&*answer);
  if (response == nullptr) return 1;
  if (response->error_code != 0) {
    std::fprintf(stderr, "raftmq: reassignment refused: error %d %s\n", response->error_code,
                 response->error_message.value_or("").c_str());
    return 1;
  }
  int failures = 0;
  for (const auto& t : response->responses) {
    for (const auto& p : t.partitions) {
      if (p.error_code == 0) {
        std::printf("%s/%d: reassignment recorded\n", t.name.c_str(), p.partition_index);
      } else {
        ++failures;
        std::printf("%s/%d: error %d %s\n", t.name.c_str(), p.partition_index, p.error_code,
                    p.error_message.value_or("").c_str());
      }
    }
  }
  return failures == 0 ? 0 : 1;
}

// Whether any broker still reports one of `moves` as in progress (its Raft membership differs
// from the assignment). Each broker only sees the partitions it hosts, so all are asked.
bool any_reported(const ClusterView& view,
                  const std::map<std::pair<std::string, std::int32_t>, std::vector<std::int32_t>>& moves) {
  for (const auto& [id, address] : view.addresses) {
    protocol::ListPartitionReassignmentsRequest request;
    auto answer = kafka_call(address, protocol::AnyRequest(std::move(request)), 46);
    if (!answer.has_value()) return true;  // unknown: ask again later
    const auto* response = std::get_if<protocol::ListPartitionReassignmentsResponse>(&*answer);
    if (response == nullptr) return true;
    for (const auto& t : response->topics) {
      for (const auto& p : t.partitions) {
        if (moves.count({t.name, p.partition_index}) != 0) return true;
      }
    }
  }
  return false;
}

// Waits until every moved partition's replicas are exactly the target, all are in sync and no
// broker reports the move as in progress. `progress` non-empty: prints "<progress>: k of n
// partitions moved" whenever k changes.
int wait_moves(rd_kafka_t* rk, const std::map<std::pair<std::string, std::int32_t>,
                                              std::vector<std::int32_t>>& moves,
               int timeout_s, const std::string& progress = "") {
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(timeout_s);
  std::size_t last_finished = moves.size() + 1;
  while (std::chrono::steady_clock::now() < deadline) {
    ClusterView view;
    if (load_view(rk, &view)) {
      std::size_t finished = 0;
      for (const auto& [tp, target] : moves) {
        auto it = view.partitions.find(tp);
        if (it == view.partitions.end()) {
          ++finished;  // deleted meanwhile
          continue;
        }
        std::set<std::int32_t> want(target.begin(), target.end());
        std::set<std::int32_t> have(it->second.replicas.begin(), it->second.replicas.end());
        std::set<std::int32_t> isr(it->second.isr.begin(), it->second.isr.end());
        if (want == have && isr == want && it->second.leader >= 0) ++finished;
      }
      if (!progress.empty() && finished != last_finished) {
        std::printf("%s: %zu of %zu partitions moved\n", progress.c_str(), finished, moves.size());
        std::fflush(stdout);
      }
      last_finished = finished;
      if (finished == moves.size() && !any_reported(view, moves)) {
        std::printf("all moves finished\n");
        return 0;
      }
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(500));
  }
  std::fprintf(stderr, "raftmq: moves not finished after %d s\n", timeout_s);
  return 1;
}

bool parse_ids(const std::string& text, std::vector<std::int32_t>* out) {
  std::size_t start = 0;
  while (start <= text.size()) {
    std::size_t comma = text.find(',', start);
    std::string item = text.substr(start, comma == std::string::npos ? std::string::npos : comma - start);
    try {
      std::size_t used = 0;
      long v = std::stol(item, &used);
      if (used != item.size() || v < 0 || v > 1000000) return false;
      out->push_back(static_cast<std::int32_t>(v));
    } catch (...) {
      return false;
    }
    if (comma == std::string::npos) break;
    start = comma + 1;
  }
  std::set<std::int32_t> unique(out->begin(), out->end());
  return !out->empty() && unique.size() == out->size();
}

int move_partition(Args& args, const std::string& spec) {
  auto slash = spec.rfind('/');
  std::vector<std::int32_t> replicas;
  auto to = args.get("to");
  std::int32_t partition = -1;
  try {
    if (slash != std::string::npos) partition = std::stoi(spec.substr(slash + 1));
  } catch (...) {
  }
  if (slash == std::string::npos || slash == 0 || partition < 0 || !to ||
      !parse_ids(*to, &replicas)) {
    std::fprintf(stderr, "usage: raftmq partition move TOPIC/PARTITION --to ID,ID,... [--wait]\n");
    return 2;
  }
  std::map<std::pair<std::string, std::int32_t>, std::vector<std::int32_t>> moves;
  moves[{spec.substr(0, slash), partition}] = replicas;
  int rc = reassign(args, moves);
  if (rc != 0 || !args.has("wait")) return rc;
  KafkaHandle rk = make_client(args, RD_KAFKA_PRODUCER);
  return rk ? wait_moves(rk.get(), moves, 120) : 1;
}

int list_reassignments(Args& args) {
  protocol::ListPartitionReassignmentsRequest request;
  request.timeout_ms = kTimeoutMs;
  auto answer = kafka_call(args.get_or("bootstrap", "127.0.0.1:9092"),
                           protocol::AnyRequest(std::move(request)), 46);
  if (!answer.has_value()) {
    std::fprintf(stderr, "raftmq: %s\n", answer.error().to_string().c_str());
    return 1;
  }
  const auto* response = std::get_if<protocol::ListPartitionReassignmentsResponse>(&*answer);
  if (response == nullptr) return 1;
  auto join = [](const std::vector<std::int32_t>& v) {
    std::string s;
    for (std::int32_t b : v) s += (s.empty() ? "" : ",") + std::to_string(b);
    return s.empty() ? std::string("-") : s;
  };
  std::size_t count = 0;
  for (const auto& t : response->topics) {
    for (const auto& p : t.partitions) {
      ++count;
      std::printf("%s/%d replicas %s adding %s removing %s\n", t.name.c_str(), p.partition_index,
                  join(p.replicas).c_str(), join(p.adding_replicas).c_str(),
                  join(p.removing_replicas).c_str());
    }
  }
  if (count == 0) std::printf("no reassignment in progress\n");
  return 0;
}

}  // namespace

int partition_command(Args& args) {
  const auto& words = args.positional();
  if (words.size() == 2 && words[0] == "move") return move_partition(args, words[1]);
  if (words.size() == 1 && words[0] == "reassignments") return list_reassignments(args);
  std::fprintf(stderr,
               "usage: raftmq partition move TOPIC/PARTITION --to ID,ID,... [--wait]\n"
               "       raftmq partition reassignments\n");
  return 2;
}

namespace {

using Moves = std::map<std::pair<std::string, std::int32_t>, std::vector<std::int32_t>>;

// The moves that take every replica off broker `leaving`: each partition hosted there gets,
// in its place, the live broker (not already a replica) holding the fewest replicas. Fails
// (nothing proposed) when a partition has no such broker: its replication factor needs more
// brokers than remain.
Result<Moves> plan_drain(const ClusterView& view, std::int32_t leaving) {
  std::map<std::int32_t, int> load;
  for (std::int32_t b : view.brokers) {
    if (b != leaving) load[b] = 0;
  }
  for (const auto& [tp, p] : view.partitions) {
    for (std::int32_t r : p.replicas) {
      if (load.count(r) != 0) ++load[r];
    }
  }
  Moves moves;
  for (const auto& [tp, p] : view.partitions) {
    if (std::find(p.replicas.begin(), p.replicas.end(), leaving) == p.replicas.end()) continue;
    std::int32_t best = -1;
    for (const auto& [b, n] : load) {
      if (std::find(p.replicas.begin(), p.replicas.end(), b) != p.replicas.end()) continue;
      if (best < 0 || n < load[best]) best = b;
    }
    if (best < 0) {
      return Status::invalid_argument(
          tp.first + "/" + std::to_string(tp.second) + " has " +
          std::to_string(p.replicas.size()) + " replicas and no other broker can take over from "
          "broker " + std::to_string(leaving) + " (" + std::to_string(load.size()) +
          " broker(s) would remain); add a broker or lower the topic's replication first");
    }
    ++load[best];
    std::vector<std::int32_t> target = p.replicas;
    std::replace(target.begin(), target.end(), leaving, best);
    moves[tp] = target;
  }
  return moves;
}

// One UnregisterBroker (key 64). kInvalidArgument carries a refusal the controller may lift
// soon (a move's last step still applying), kNotFound an unknown id.
Status unregister_broker(Args& args, std::int32_t id) {
  protocol::UnregisterBrokerRequest request;
  request.broker_id = id;
  auto answer = kafka_call(args.get_or("bootstrap", "127.0.0.1:9092"),
                           protocol::AnyRequest(std::move(request)), 64);
  if (!answer.has_value()) return answer.error();
  const auto* response = std::get_if<protocol::UnregisterBrokerResponse>(&*answer);
  if (response == nullptr) return Status::internal("unexpected answer to UnregisterBroker");
  if (response->error_code == 0) return Status::ok();
  std::string message = response->error_message.value_or("") + " (Kafka error " +
                        std::to_string(response->error_code) + ")";
  if (response->error_code == 102) return Status::not_found(message);  // BROKER_ID_NOT_REGISTERED
  if (response->error_code == 42) return Status::invalid_argument(message);  // INVALID_REQUEST
  return Status::unavailable(message);
}

// raftmq broker remove N [--timeout S]: drains N (the decommission moves, waited for with
// progress output, at most S seconds, default 300), then removes its record with
// UnregisterBroker (docs/cluster.md "Removing a broker"). Nothing is proposed when the drain
// cannot be planned (a partition would lack a broker); the record is not removed when the
// moves do not finish in time (they keep going; re-running the command resumes).
int remove_broker(Args& args, std::int32_t id, int timeout_s) {
  KafkaHandle rk = make_client(args, RD_KAFKA_PRODUCER);
  if (!rk) return 1;
  ClusterView view;
  if (!load_view(rk.get(), &view)) return 1;
  if (view.brokers.count(id) == 0) {
    std::fprintf(stderr, "raftmq: broker %d is not in the cluster's metadata\n", id);
    return 1;
  }
  Result<Moves> moves = plan_drain(view, id);
  if (!moves.has_value()) {
    std::fprintf(stderr, "raftmq: cannot drain broker %d: %s; nothing was changed\n", id,
                 moves.error().message().c_str());
    return 1;
  }
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(timeout_s);
  if (!moves->empty()) {
    std::printf("draining broker %d: moving %zu partition replica(s)\n", id, moves->size());
    std::fflush(stdout);
    if (reassign(args, *moves) != 0) {
      std::fprintf(stderr, "raftmq: broker %d not removed: the drain was refused\n", id);
      return 1;
    }
    if (wait_moves(rk.get(), *moves, timeout_s, "draining broker " + std::to_string(id)) != 0) {
      std::fprintf(stderr,
                   "raftmq: broker %d not removed: its replicas did not all move within %d s "
                   "(the moves continue; see `raftmq partition reassignments`, then run `raftmq "
                   "broker remove %d` again)\n", id, timeout_s, id);
      return 1;
    }
  }
  // The controller re-checks: a move's last step (the replica leaving the Raft group) may
  // still be applying, which is refused for a moment: retried until the deadline.
  Status s = unregister_broker(args, id);
  while (s.code() == ErrorCode::kInvalidArgument &&
         std::chrono::steady_clock::now() + std::chrono::milliseconds(500) < deadline &&
         s.message().find("still") != std::string::npos) {
    std::this_thread::sleep_for(std::chrono::milliseconds(500));
    s = unregister_broker(args, id);
  }
  // "Already removed" after this command asked for it: the removal took effect but its answer
  // was lost, e.g. the controller leader was the broker removed and stopped before answering,
  // and the request was forwarded again to the next leader. The cluster is as asked.
  if (s.code() == ErrorCode::kNotFound && s.message().find("already removed") != std::string::npos) {
    std::printf("broker %d removed from the cluster (its removal took effect; the answer came "
                "from the next controller: %s)\n", id, s.message().c_str());
    return 0;
  }
  if (!s.is_ok()) {
    std::fprintf(stderr, "raftmq: broker %d not removed: %s\n", id, s.message().c_str());
    return 1;
  }
  std::printf("broker %d removed from the cluster\n", id);
  return 0;
}

}  // namespace

// decommission: moves every replica off broker N (plan_drain); the partition move engine does
// the rest (learners, catch-up, joint consensus) while the partitions keep serving. The broker
// stays registered. remove: drain, then unregister (remove_broker()).
int broker_command(Args& args) {
  const auto& words = args.positional();
  std::vector<std::int32_t> ids;
  int timeout_s = 300;
  if (auto t = args.get("timeout")) {
    try {
      std::size_t used = 0;
      timeout_s = std::stoi(*t, &used);
      if (used != t->size()) timeout_s = -1;
    } catch (...) {
      timeout_s = -1;
    }
  }
  if (words.size() != 2 || (words[0] != "decommission" && words[0] != "remove") ||
      !parse_ids(words[1], &ids) || ids.size() != 1 || timeout_s < 1 || timeout_s > 86400) {
    std::fprintf(stderr,
                 "usage: raftmq broker decommission ID [--wait] [--timeout SECONDS]\n"
                 "       raftmq broker remove ID [--timeout SECONDS]   (drains, then removes)\n");
    return 2;
  }
  if (words[0] == "remove") return remove_broker(args, ids[0], timeout_s);
  std::int32_t leaving = ids[0];
  KafkaHandle rk = make_client(args, RD_KAFKA_PRODUCER);
  if (!rk) return 1;
  ClusterView view;
  if (!load_view(rk.get(), &view)) return 1;
  Result<Moves> moves = plan_drain(view, leaving);
  if (!moves.has_value()) {
    std::fprintf(stderr, "raftmq: %s\n", moves.error().message().c_str());
    return 1;
  }
  if (moves->empty()) {
    std::printf("broker %d holds no replicas\n", leaving);
    return 0;
  }
  int rc = reassign(args, *moves);
  if (rc != 0 || !args.has("wait")) return rc;
  return wait_moves(rk.get(), *moves, timeout_s, "draining broker " + std::to_string(leaving));
}

}  // namespace mq::cli
