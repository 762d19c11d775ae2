#include "tests/lib/veth_namespace.h"

#include <unistd.h>

#include <cstdio>
#include <vector>

#include "tools/process.h"

namespace sluice::testing {
namespace {

// `ip` lives in sbin, which a test's PATH may lack.
Result<std::string> findIp() {
  for (const char* p : {"/usr/sbin/ip", "/sbin/ip", "/usr/bin/ip", "/bin/ip"}) {
    if (access(p, X_OK) == 0) return std::string(p);
  }
  auto found = tools::findExecutable("ip");
  if (!found.isOk())
    return unavailable("iproute2's 'ip' is not installed (apt-get install iproute2)");
  return found;
}

Status runIp(const std::string& ip, const std::vector<std::string>& args) {
  SLUICE_ASSIGN_OR_RETURN(tools::RunOutput r, tools::runProcess(ip, args));
  if (r.exit_code == 0) return Status();
  std::string cmd = "ip";
  for (const auto& a : args) cmd += " " + a;
  std::string err = r.err;
  while (!err.empty() && (err.back() == '\n' || err.back() == ' ')) err.pop_back();
  return Status(StatusCode::kInternal,
                "'" + cmd + "' exited with " + std::to_string(r.exit_code) + ": " + err);
}

std::string dotted(uint32_t a) {
  return std::to_string(a >> 24) + "." + std::to_string((a >> 16) & 255) + "." +
         std::to_string((a >> 8) & 255) + "." + std::to_string(a & 255);
}

}  // namespace

VethNamespace::VethNamespace(std::string ip, std::string name, std::string host_addr,
                             std::string inner_addr)
    : ip_(std::move(ip)),
      name_(name),
      host_link_(name + "h"),
      inner_link_(name + "n"),
      host_addr_(std::move(host_addr)),
      inner_addr_(std::move(inner_addr)) {}

Result<std::unique_ptr<VethNamespace>> VethNamespace::create() {
  if (geteuid() != 0)
    return unavailable("network namespaces need root (running as uid " + std::to_string(geteuid()) +
                       ")");
  SLUICE_ASSIGN_OR_RETURN(std::string ip, findIp());
  // PIDs are below 2^22 (pid_max's ceiling), and 10/8 holds 2^22 /30s.
  const uint32_t pid = static_cast<uint32_t>(getpid());
  const uint32_t base = (10u << 24) | ((pid & 0x3fffffu) << 2);
  std::string name = "sl" + std::to_string(pid);
  // Only a dead process with our PID could have left these.
  runIp(ip, {"link", "del", name + "h"}).ignore();  // absent is the usual case
  runIp(ip, {"netns", "del", name}).ignore();       // likewise
  if (Status s = runIp(ip, {"netns", "add", name}); !s.isOk()) {
    return unavailable("cannot create a network namespace here: " + s.message());
  }
  std::unique_ptr<VethNamespace> ns(
      new VethNamespace(ip, name, dotted(base + 1), dotted(base + 2)));
  // From here on the destructor removes whatever was made.
  const std::vector<std::vector<std::string>> steps = {
      {"link", "add", ns->host_link_, "type", "veth", "peer", "name", ns->inner_link_},
      {"link", "set", ns->inner_link_, "netns", name},
      {"addr", "add", ns->host_addr_ + "/30", "dev", ns->host_link_},
      {"link", "set", ns->host_link_, "up"},
      {"-n", name, "addr", "add", ns->inner_addr_ + "/30", "dev", ns->inner_link_},
      {"-n", name, "link", "set", ns->inner_link_, "up"},
      {"-n", name, "link", "set", "lo", "up"},
  };
  for (const auto& step : steps) {
    if (Status s = runIp(ip, step); !s.isOk()) {
      return Status(step == steps.front() ? StatusCode::kUnavailable : s.code(),
                    "setting up network namespace " + name + ": " + s.message());
    }
  }
  return ns;
}

VethNamespace::~VethNamespace() {
  // Deleting one end deletes the pair, wherever the other end is.
  Status link = runIp(ip_, {"link", "del", host_link_});
  Status netns = runIp(ip_, {"netns", "del", name_});
  // The pair is absent when setup failed before creating it.
  if (!link.isOk() && link.message().find("Cannot find device") == std::string::npos) {
    std::fprintf(stderr, "VethNamespace: %s\n", link.toString().c_str());
  }
  if (!netns.isOk()) std::fprintf(stderr, "VethNamespace: %s\n", netns.toString().c_str());
}

Status VethNamespace::setLinkUp(bool up) {
  return runIp(ip_, {"link", "set", host_link_, up ? "up" : "down"});
}

}  // namespace sluice::testing
