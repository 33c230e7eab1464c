#pragma once
// A password given on the command line (--db_password=..., as Kubeflow's manifests do) is
// readable by every user of the node through /proc/<pid>/cmdline and `ps` for as long as the
// process runs. cache-server reads it from its own copy of the arguments and then overwrites the
// value in the process's argument area, which is what /proc/<pid>/cmdline shows.
#include <cstddef>

namespace kcache::cmd {

// Overwrites with 'x' the value of every --db_password / --db-password (one or two dashes; the
// value after '=' or in the next argument). Call after the arguments were copied for parsing.
// Returns how many values were hidden.
std::size_t hideSecretArguments(int argc, char** argv);

}  // namespace kcache::cmd
