// Ready: one batch of obligations the core hands to its host. The host must act on the fields
// in this order (docs/raft_driver.md has the full contract):
//
//  1. `messages`: may be sent at once, before or in parallel with the persistence below. This
//     is how the leader's disk write runs in parallel with replication (thesis §10.2.1).
//  2. `snapshot` (if set), then `entries_to_persist`, then `hard_state` (if set): write them
//     to stable storage. When `must_sync` is true they must be durable (fsync) before step 3.
//     Entries replace any persisted entries at the same or higher index (suffix truncation).
//  3. `messages_after_persist`: send only after step 2 is durable. These acknowledge local
//     persistence (append responses, vote grants) or depend on it.
//  4. `committed_entries`: apply to the state machine, in order. `read_states` become servable
//     once the state machine has applied up to their index.
//  5. advance(ready): tell the core all of the above is done. Only then does the core treat
//     the entries as persisted (the leader counts itself for commitment only now).
//
// Between ready() and advance() the host may keep calling tick(), step(), propose(); it must
// not call ready() again until advance().
#pragma once

#include <optional>
#include <vector>

#include "raft/types.h"

namespace mq::raft {

struct Ready {
  std::optional<SoftState> soft_state;  // set when leader or role changed; nothing to persist
  std::optional<HardState> hard_state;  // set when it changed; persist (step 2)
  std::vector<ReadState> read_states;   // confirmed ReadIndex requests (step 4)
  std::optional<Snapshot> snapshot;     // a snapshot received from the leader; persist + install
  std::vector<Entry> entries_to_persist;   // step 2
  std::vector<Entry> committed_entries;    // step 4
  std::vector<Message> messages;           // step 1: send now
  std::vector<Message> messages_after_persist;  // step 3: send after the fsync
  bool must_sync = false;  // step 2 must be durable before step 3

  bool empty() const {
    return !soft_state && !hard_state && read_states.empty() && !snapshot &&
           entries_to_persist.empty() && committed_entries.empty() && messages.empty() &&
           messages_after_persist.empty();
  }
};

}  // namespace mq::raft
