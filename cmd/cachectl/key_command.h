#pragma once
#include <CLI/CLI.hpp>

namespace kcache::cachectl {

// `cachectl key --template FILE | --pod FILE [--canonical]`: prints the execution key Kubeflow and
// kcache compute for a step.
void addKeyCommand(CLI::App& app);

}  // namespace kcache::cachectl
