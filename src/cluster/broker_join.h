// Dynamic broker addition (docs/cluster.md, "Adding a broker"): the messages a joining broker
// and the controller exchange, and the joining broker's own record of its membership.
//
//   join request (control-plane channel, context kJoinRequestContext, one entry):
//     version u8 (=1) | request_id u64 | hops u8 | broker | incarnation u64
//   join answer (context kJoinAnswerContext, one entry):
//     version u8 (=1) | request_id u64 | status u8 | message string |
//     voter_count u32 | voter * voter_count
//   broker := id i32 | host string | kafka_port u16 | rpc_host string | rpc_port u16 |
//             rack string                       (as in docs/formats/controller_command_format.md)
//   voter  := id i32 | host string | rpc_port u16 | kafka_port u16
//   string := length u16 (<= 4096) | bytes
//
//   <data_dir>/join.state (docs/formats/join_state_format.md; atomically replaced):
//     version u8 (=1) | broker_id i32 | incarnation u64 | voter_count u32 (<= 1024) |
//     voter * voter_count | crc32c u32 (of every byte before it)
//   voter_count 0: the incarnation is chosen, the join not answered yet.
//
// Every decoder is bounds-checked: truncation, trailing bytes, an unknown version or status,
// a count above its bound → kCorruption.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "base/buffer.h"
#include "base/result.h"
#include "cluster/controller_state.h"
#include "storage/file_system.h"

namespace mq::cluster {

inline constexpr std::uint64_t kJoinRequestContext = 5;
inline constexpr std::uint64_t kJoinAnswerContext = 6;
// "You were removed" (docs/cluster.md "Removing a broker"): sent to a broker whose record was
// removed when it is heard from again (control-plane channel, one entry):
//   version u8 (=1) | broker i32 | incarnation u64
inline constexpr std::uint64_t kRemovedNoticeContext = 7;
// The controller group's voters: joined brokers are promoted (once caught up and alive) while
// there are fewer voters than this.
inline constexpr std::size_t kControllerVotersMax = 5;
// The most voters an operator may choose (`raftmq controller voters add`): every voter is on
// every commit's path, so more only slows the controller down.
inline constexpr std::size_t kControllerVotersChosenMax = 9;
inline constexpr std::uint32_t kJoinVotersMax = 1024;
inline constexpr char kJoinStateFile[] = "join.state";

// One controller voter (a broker of the static list): where to reach it.
struct JoinVoter {
  BrokerId id;
  std::string host;
  std::uint16_t rpc_port = 0;
  std::uint16_t kafka_port = 0;
  bool operator==(const JoinVoter&) const = default;
};

struct JoinRequest {
  std::uint64_t request_id = 0;
  std::uint8_t hops = 0;  // 1 once forwarded to the controller leader: never forwarded again
  BrokerRecord broker;    // incarnation != 0
  bool operator==(const JoinRequest&) const = default;
};

struct JoinAnswer {
  std::uint64_t request_id = 0;
  Status status;
  std::vector<JoinVoter> voters;  // on success: the controller group's (bootstrap) voters
};

Buffer encode_join_request(const JoinRequest& request);
Result<JoinRequest> decode_join_request(BufferView bytes);
Buffer encode_join_answer(const JoinAnswer& answer);
Result<JoinAnswer> decode_join_answer(BufferView bytes);

struct RemovedNotice {
  BrokerId broker;
  std::uint64_t incarnation = 0;  // of the removed data directory (0: a static broker)
  bool operator==(const RemovedNotice&) const = default;
};
Buffer encode_removed_notice(const RemovedNotice& notice);
Result<RemovedNotice> decode_removed_notice(BufferView bytes);

// What a joined broker keeps in its data directory.
struct JoinState {
  BrokerId broker;
  std::uint64_t incarnation = 0;
  std::vector<JoinVoter> voters;  // empty: not joined yet
  bool operator==(const JoinState&) const = default;
};
Buffer encode_join_state(const JoinState& state);
Result<JoinState> decode_join_state(BufferView bytes);
Status save_join_state(storage::FileSystem* fs, const std::string& data_dir, const JoinState& state);
// nullopt when the file does not exist.
Result<std::optional<JoinState>> load_join_state(storage::FileSystem* fs,
                                                 const std::string& data_dir);

// "host:port[,host:port...]" (the --join flag): kInvalidArgument naming the bad item.
struct JoinSeed {
  std::string host;
  std::uint16_t port = 0;
  bool operator==(const JoinSeed&) const = default;
};
Result<std::vector<JoinSeed>> parse_join_seeds(std::string_view text);

}  // namespace mq::cluster
