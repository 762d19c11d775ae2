// An in-process storage node (ChunkStore + StorageService on a real
// libfabric endpoint on 127.0.0.1) and a client endpoint, for RPC tests.
#pragma once

#include <gtest/gtest.h>

#include <memory>
#include <string>

#include "common/net/endpoint.h"
#include "storage_node/chunk_store.h"
#include "storage_node/scrubber.h"
#include "storage_node/storage_client.h"
#include "storage_node/storage_service.h"
#include "tests/storage_node/test_util.h"

namespace sluice::storage::testing {

struct LocalNode {
  TempDir dir;
  std::unique_ptr<ChunkStore> store;
  std::unique_ptr<net::Endpoint> endpoint;
  std::unique_ptr<Scrubber> scrubber;
  std::unique_ptr<StorageService> service;

  Status start(StorageServiceOptions svc = {}, ChunkStoreOptions so = {}) {
    so.data_dir = dir.path() + "/data";
    if (so.io_buffer_bytes == (8u << 20)) so.io_buffer_bytes = 1u << 20;
    SLUICE_ASSIGN_OR_RETURN(store, ChunkStore::open(so));
    net::EndpointOptions eo;
    eo.listen = "127.0.0.1:0";
    eo.worker_threads = 4;
    SLUICE_ASSIGN_OR_RETURN(endpoint, net::Endpoint::create(eo));
    scrubber = std::make_unique<Scrubber>(*store, ScrubOptions{0, std::chrono::hours(1)});
    svc.io_contexts = 4;
    SLUICE_ASSIGN_OR_RETURN(service, StorageService::create(*store, *endpoint, scrubber.get(), svc));
    service->registerHandlers();
    return endpoint->start();
  }
  ~LocalNode() {
    if (endpoint) endpoint->shutdown();
  }
};

inline std::unique_ptr<net::Endpoint> clientEndpoint() {
  net::EndpointOptions eo;
  eo.listen = "127.0.0.1:0";
  eo.worker_threads = 2;
  auto ep = net::Endpoint::create(eo);
  EXPECT_TRUE(ep.isOk()) << ep.status().toString();
  if (!ep.isOk()) return nullptr;
  Status s = (*ep)->start();
  EXPECT_TRUE(s.isOk()) << s.toString();
  return std::move(ep).value();
}

}  // namespace sluice::storage::testing
