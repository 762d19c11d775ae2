#include "client/cluster_map.h"

#include <gtest/gtest.h>

namespace sluice::client {
namespace {

using wire::meta::GetClusterMapResponseT;
using wire::meta::NodeInfoT;

GetClusterMapResponseT makeMap(uint32_t stripes, uint32_t replicas, uint64_t nodes) {
  GetClusterMapResponseT r;
  r.epoch = 7;
  r.stripe_count = stripes;
  r.max_replicas = replicas;
  for (uint64_t id = 1; id <= nodes; ++id) {
    auto n = std::make_unique<NodeInfoT>();
    n->id = id;
    n->address = "127.0.0.1:" + std::to_string(7400 + id);
    r.nodes.push_back(std::move(n));
  }
  for (uint32_t s = 0; s < stripes; ++s) {
    for (uint32_t i = 0; i < replicas; ++i) r.replicas.push_back((s + i) % nodes + 1);
  }
  return r;
}

TEST(ClusterMap, PlacesChunksOnDistinctNodes) {
  auto map = ClusterMap::fromResponse(makeMap(16, 3, 4));
  ASSERT_TRUE(map.isOk()) << map.status().toString();
  EXPECT_EQ(map->epoch(), 7u);
  EXPECT_EQ(map->stripeNodes(0, 2), (std::vector<NodeId>{1, 2}));
  EXPECT_EQ(map->stripeNodes(3, 3), (std::vector<NodeId>{4, 1, 2}));
  EXPECT_EQ(map->stripeNodes(3, 9), (std::vector<NodeId>{4, 1, 2}));  // capped at max_replicas
  EXPECT_TRUE(map->stripeNodes(16, 1).empty());
  ChunkId c{1, 5};
  EXPECT_EQ(map->replicasOf(c, 1), (std::vector<NodeId>{2}));  // stripe 5 % 16 = 5 -> node 2
  ASSERT_NE(map->node(4), nullptr);
  EXPECT_EQ(map->node(4)->address, "127.0.0.1:7404");
  EXPECT_EQ(map->node(99), nullptr);
}

TEST(ClusterMap, RejectsMalformedMaps) {
  auto shape = makeMap(4, 2, 3);
  shape.replicas.pop_back();
  EXPECT_EQ(ClusterMap::fromResponse(shape).status().code(), StatusCode::kProtocolError);

  auto unknown = makeMap(4, 2, 3);
  unknown.replicas[1] = 42;
  auto r = ClusterMap::fromResponse(unknown);
  EXPECT_EQ(r.status().code(), StatusCode::kProtocolError);
  EXPECT_NE(r.status().message().find("unknown node 42"), std::string::npos);

  auto twice = makeMap(4, 2, 3);
  twice.replicas[1] = twice.replicas[0];
  EXPECT_FALSE(ClusterMap::fromResponse(twice).isOk());

  auto gap = makeMap(4, 3, 3);
  gap.replicas[0] = 0;
  EXPECT_FALSE(ClusterMap::fromResponse(gap).isOk());

  EXPECT_FALSE(ClusterMap::fromResponse(makeMap(0, 2, 3)).isOk());
  auto zero_id = makeMap(4, 2, 3);
  zero_id.nodes[0]->id = 0;
  EXPECT_FALSE(ClusterMap::fromResponse(zero_id).isOk());
}

TEST(ClusterMap, EmptySlotsTrailAndShortenReplicaLists) {
  auto r = makeMap(2, 3, 3);
  r.replicas[2] = 0;  // stripe 0 has two replicas only
  auto map = ClusterMap::fromResponse(r);
  ASSERT_TRUE(map.isOk());
  EXPECT_EQ(map->stripeNodes(0, 3).size(), 2u);
}

}  // namespace
}  // namespace sluice::client
