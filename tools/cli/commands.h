// The `sluice` command groups. Each add*() registers its subcommands on the
// app; a parsed subcommand stores the function to run in `action`.
#pragma once

#include <functional>

#include <CLI/CLI.hpp>

#include "tools/cli/context.h"

namespace sluice::cli {

using Action = std::function<int()>;

void addDatasetCommands(CLI::App& app, Context& ctx, Action& action);
void addVersionCommands(CLI::App& app, Context& ctx, Action& action);
void addReadCommands(CLI::App& app, Context& ctx, Action& action);
void addAdminCommands(CLI::App& app, Context& ctx, Action& action);
void addDevCommands(CLI::App& app, Context& ctx, Action& action);
void addMountCommands(CLI::App& app, Context& ctx, Action& action);

}  // namespace sluice::cli
