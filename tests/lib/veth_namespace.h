// VethNamespace: a network namespace joined to this one by a veth pair, so a
// test can run a daemon as if on another host and cut it off (link down)
// while everything else keeps running.
//
// Needs root and iproute2's `ip`. Names and addresses derive from the PID of
// the creating process, so parallel test processes never collide: netns
// "sl<pid>", links "sl<pid>h" (this side) and "sl<pid>n" (inside), and the
// PID-th /30 of 10.0.0.0/8 (.1 this side, .2 inside). Hence at most one at a
// time per process. Traffic only ever goes to these two addresses.
//
// Thread safety: none; create, change and destroy it from the test's main
// thread.
#pragma once

#include <memory>
#include <string>

#include "common/core/result.h"

namespace sluice::testing {

class VethNamespace {
 public:
  // kUnavailable with the reason when this machine cannot do it (not root,
  // no `ip`, namespaces not permitted): tests skip on that code. Leftovers
  // of a dead process that had the same PID are deleted first.
  static Result<std::unique_ptr<VethNamespace>> create();
  // Deletes the veth pair and the namespace. Daemons still inside keep it
  // alive, cut off, until they exit: stop them first.
  ~VethNamespace();
  VethNamespace(const VethNamespace&) = delete;
  VethNamespace& operator=(const VethNamespace&) = delete;

  const std::string& name() const { return name_; }                // for `ip netns exec`
  const std::string& hostLink() const { return host_link_; }       // this side's interface
  const std::string& hostAddress() const { return host_addr_; }    // "10.a.b.c", this side
  const std::string& innerAddress() const { return inner_addr_; }  // inside the namespace

  // Sets this side's end of the pair down (the namespace is cut off both
  // ways: the inner end loses its carrier) or up again.
  Status setLinkUp(bool up);

 private:
  VethNamespace(std::string ip, std::string name, std::string host_addr, std::string inner_addr);
  std::string ip_;  // path of the `ip` executable
  std::string name_;
  std::string host_link_;
  std::string inner_link_;
  std::string host_addr_;
  std::string inner_addr_;
};

}  // namespace sluice::testing
