#pragma once
// Command lines read the way Go's `flag` package reads them, on top of CLI11, so that the
// arguments of Kubeflow's own cache-server Deployment start kcache unchanged. Kubeflow passes
// every setting as `--name=$(VARIABLE)`, and the kubelet substitutes an empty variable as an empty
// value: `--namespace_to_watch=` followed by `--listen_port=8443` in the multi-user install.
// CLI11 (2.1.2, Debian 12) reads `--name=` exactly as a bare `--name` and takes the next argument
// as the value, swallowing `--listen_port=8443`; Go reads it as the empty string. So does kcache:
// an empty value is the empty string, and a flag for which "" means nothing (a port, a number, a
// choice, a file) refuses it, saying which flag and what it expects.
#include <string>
#include <vector>

#include <CLI/CLI.hpp>

namespace kcache::cmd {

// A check refusing an empty value, for flags to which "" means nothing: `--name=` and `--name ""`
// then fail with "empty value; expected <expected>". Give it as the option's first check, so that
// it speaks before a range or set check would describe "" in its own words:
//   app.add_option("--listen-port", port)->check(cmd::nonEmpty("a port 1-65535"))->check(...)
CLI::Validator nonEmpty(const std::string& expected);

// `arguments` (without the program name) rewritten so that CLI11 reads them as Go does:
//   - `-db_host=x` and `-db_host x` (one dash, a name of two or more letters) are `--db_host...`;
//   - `--name=` is the flag with the empty string as its value, never a reason to take the next
//     argument; a flag checked with nonEmpty, or a switch (`--json=`), throws instead;
//   - `-n=x` (a one-letter name) is `-n` with the value x;
//   - the argument after a flag that takes a value and was given without '=' is that value,
//     whatever it looks like (`--db_password -secret`);
//   - subcommand names switch to the subcommand's flags (and its parents'), and everything after
//     `--` is left as it is.
// Flags `app` does not know are left for CLI11 to report. Throws CLI::ValidationError naming the
// flag as it was spelled (`--listen_port: empty value; expected a port 1-65535`).
std::vector<std::string> goStyleArguments(CLI::App& app, const std::vector<std::string>& arguments);

// app.parse() of goStyleArguments(app, arguments); throws what either throws (CLI::ParseError).
void parseGoStyle(CLI::App& app, const std::vector<std::string>& arguments);

}  // namespace kcache::cmd
