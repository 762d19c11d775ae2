// FakeMeta: a minimal metadata server on a real endpoint (127.0.0.1) for
// storage node tests. RegisterNode assigns cluster `cluster` and node 7 and
// records the address the node registered; Heartbeat records what it was
// told. A test can hold a heartbeat's answer back (a reply lost or slow, as
// after a link cut) or answer kNotFound (meta lost the node).
//
// Thread safety: handlers run on the endpoint's workers; the counters are
// atomics, the rest is behind mu_.
#pragma once

#include <flatbuffers/flatbuffers.h>

#include <atomic>
#include <memory>
#include <mutex>
#include <string>

#include "common/codec/hash128.h"
#include "common/core/result.h"
#include "common/net/endpoint.h"
#include "common/wire/body.h"
#include "common/wire/meta_generated.h"

namespace sluice::storage::testing {

class FakeMeta {
 public:
  // `register_interval_ms` / `heartbeat_interval_ms`: the heartbeat interval
  // told in RegisterNode / Heartbeat answers (0: not told).
  explicit FakeMeta(Hash128 cluster, uint32_t register_interval_ms = 100,
                    uint32_t heartbeat_interval_ms = 0)
      : cluster_(cluster),
        register_interval_ms_(register_interval_ms),
        heartbeat_interval_ms_(heartbeat_interval_ms) {}

  Status start() {
    namespace wm = wire::meta;
    net::EndpointOptions eo;
    eo.listen = "127.0.0.1:0";
    SLUICE_ASSIGN_OR_RETURN(ep_, net::Endpoint::create(eo));
    ep_->registerHandler(
        net::makeOpcode(net::ServiceId::kMeta, uint8_t(wm::MetaMethod::RegisterNode)),
        [this](std::unique_ptr<net::IncomingCall> call) {
          auto req = wire::decodeBody<wm::RegisterNodeRequest>(call->body(), "RegisterNode");
          if (!req.isOk()) return call->reply(req.status());
          if ((*req)->cluster_id() != nullptr &&
              Hash128{(*req)->cluster_id()->hi(), (*req)->cluster_id()->lo()} != cluster_) {
            return call->reply(failedPrecondition("not this cluster"));
          }
          {
            std::lock_guard lock(mu_);
            registered_address_ = (*req)->address() ? (*req)->address()->str() : "";
          }
          ++registrations_;
          flatbuffers::FlatBufferBuilder fbb;
          wm::Hash h(cluster_.hi, cluster_.lo);
          fbb.Finish(wm::CreateRegisterNodeResponse(fbb, &h, 7, 1, register_interval_ms_));
          call->reply(Status::ok(), wire::finishBody(fbb));
        });
    ep_->registerHandler(
        net::makeOpcode(net::ServiceId::kMeta, uint8_t(wm::MetaMethod::Heartbeat)),
        [this](std::unique_ptr<net::IncomingCall> call) {
          auto req = wire::decodeBody<wm::HeartbeatRequest>(call->body(), "Heartbeat");
          if (!req.isOk()) return call->reply(req.status());
          last_chunks_ = (*req)->chunk_count();
          last_errors_ = (*req)->error_count();
          last_node_ = (*req)->node_id();
          ++heartbeats_;
          {
            std::lock_guard lock(mu_);
            if (held_ != nullptr) ++heartbeats_while_held_;
            if (hold_next_) {
              hold_next_ = false;
              held_ = std::move(call);
              return;
            }
            if (not_found_ > 0) {
              --not_found_;
              return call->reply(notFound("node 7 is not registered; register first"));
            }
          }
          flatbuffers::FlatBufferBuilder fbb;
          fbb.Finish(wm::CreateHeartbeatResponse(fbb, 1, wm::NodeState::Up, heartbeat_interval_ms_));
          call->reply(Status::ok(), wire::finishBody(fbb));
        });
    return ep_->start();
  }
  ~FakeMeta() {
    releaseHeld();
    if (ep_) ep_->shutdown();
  }

  std::string address() const { return ep_->address(); }
  std::string registeredAddress() const {
    std::lock_guard lock(mu_);
    return registered_address_;
  }
  // The next heartbeat gets no answer until releaseHeld().
  void holdNextHeartbeat() {
    std::lock_guard lock(mu_);
    hold_next_ = true;
  }
  bool holding() const {
    std::lock_guard lock(mu_);
    return held_ != nullptr;
  }
  // Heartbeats that arrived while one answer was held back.
  int heartbeatsWhileHeld() const {
    std::lock_guard lock(mu_);
    return heartbeats_while_held_;
  }
  void releaseHeld() {
    std::unique_ptr<net::IncomingCall> call;
    {
      std::lock_guard lock(mu_);
      call = std::move(held_);
    }
    if (call == nullptr) return;
    namespace wm = wire::meta;
    flatbuffers::FlatBufferBuilder fbb;
    fbb.Finish(wm::CreateHeartbeatResponse(fbb, 1, wm::NodeState::Up, heartbeat_interval_ms_));
    call->reply(Status::ok(), wire::finishBody(fbb));
  }
  // The next `n` heartbeats are answered kNotFound.
  void answerNotFound(int n) {
    std::lock_guard lock(mu_);
    not_found_ = n;
  }

  std::atomic<int> registrations_{0};
  std::atomic<int> heartbeats_{0};
  std::atomic<uint64_t> last_chunks_{0};
  std::atomic<uint64_t> last_node_{0};
  std::atomic<uint64_t> last_errors_{0};

 private:
  Hash128 cluster_;
  uint32_t register_interval_ms_;
  uint32_t heartbeat_interval_ms_;
  std::unique_ptr<net::Endpoint> ep_;
  mutable std::mutex mu_;
  std::string registered_address_;            // GUARDED_BY(mu_)
  bool hold_next_ = false;                    // GUARDED_BY(mu_)
  std::unique_ptr<net::IncomingCall> held_;   // GUARDED_BY(mu_)
  int heartbeats_while_held_ = 0;             // GUARDED_BY(mu_)
  int not_found_ = 0;                         // GUARDED_BY(mu_)
};

}  // namespace sluice::storage::testing
