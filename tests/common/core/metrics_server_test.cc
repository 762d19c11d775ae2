#include <httplib.h>

#include <gtest/gtest.h>

#include "common/core/metrics.h"
#include "common/core/metrics_server.h"

namespace sluice {
namespace {

TEST(MetricsServer, ServesExpositionOnEphemeralPort) {
  MetricsRegistry r;
  r.counter("sluice_test_scrapes_total", "Scrapes.").inc(5);
  MetricsServer server(r);
  ASSERT_TRUE(server.start({"127.0.0.1", 0}).isOk());
  ASSERT_NE(server.port(), 0);

  httplib::Client client("127.0.0.1", server.port());
  httplib::Result res = client.Get("/metrics");
  ASSERT_TRUE(res) << httplib::to_string(res.error());
  EXPECT_EQ(res->status, 200);
  EXPECT_EQ(res->get_header_value("Content-Type"), "text/plain; version=0.0.4");
  EXPECT_EQ(res->body, r.exposition());
  EXPECT_NE(res->body.find("sluice_test_scrapes_total 5\n"), std::string::npos);

  // The body is produced per scrape.
  r.counter("sluice_test_scrapes_total", "").inc();
  res = client.Get("/metrics");
  ASSERT_TRUE(res);
  EXPECT_NE(res->body.find("sluice_test_scrapes_total 6\n"), std::string::npos);

  res = client.Get("/other");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 404);
  server.stop();
}

TEST(MetricsServer, StopsCleanlyAndRestarts) {
  MetricsRegistry r;
  MetricsServer server(r);
  ASSERT_TRUE(server.start({"127.0.0.1", 0}).isOk());
  uint16_t first = server.port();
  EXPECT_EQ(server.start({"127.0.0.1", 0}).code(), StatusCode::kFailedPrecondition);
  server.stop();
  EXPECT_EQ(server.port(), 0);
  server.stop();  // idempotent

  httplib::Client client("127.0.0.1", first);
  client.set_connection_timeout(2, 0);
  EXPECT_FALSE(client.Get("/metrics"));  // nobody listens any more

  ASSERT_TRUE(server.start({"127.0.0.1", 0}).isOk());
  httplib::Client again("127.0.0.1", server.port());
  httplib::Result res = again.Get("/metrics");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 200);
}

TEST(MetricsServer, BusyPortIsAnErrorNamingTheAddress) {
  MetricsRegistry r;
  MetricsServer a(r);
  ASSERT_TRUE(a.start({"127.0.0.1", 0}).isOk());
  MetricsServer b(r);
  HostPort taken{"127.0.0.1", a.port()};
  Status s = b.start(taken);
  EXPECT_EQ(s.code(), StatusCode::kUnavailable);
  EXPECT_NE(s.message().find("cannot listen on " + taken.toString()), std::string::npos)
      << s.message();
}

TEST(MetricsServer, DestructorStops) {
  MetricsRegistry r;
  auto server = std::make_unique<MetricsServer>(r);
  ASSERT_TRUE(server->start({"127.0.0.1", 0}).isOk());
  server.reset();  // must join without hanging
  SUCCEED();
}

}  // namespace
}  // namespace sluice
