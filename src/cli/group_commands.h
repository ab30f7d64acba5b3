// raftmq group list|describe|reset-offsets (src/cli/group_commands.cc; docs/groups.md).
#pragma once

#include "cli/args.h"

namespace mq::cli {

int group_command(Args& args);

}  // namespace mq::cli
