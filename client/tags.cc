#include "client/tags.h"

namespace sluice::client {

namespace meta = wire::meta;

Result<std::vector<TagEntry>> listTags(Cluster& cluster, const std::string& dataset) {
  std::vector<TagEntry> out;
  std::string cursor;
  do {
    meta::ListTagsRequestT req;
    req.dataset = dataset;
    req.cursor = cursor;
    SLUICE_ASSIGN_OR_RETURN(auto resp, (cluster.meta<meta::ListTagsRequest, meta::ListTagsResponse>(
                                           meta::MetaMethod::ListTags, req, "ListTags")));
    for (const auto& t : resp->tags) {
      if (t) out.push_back({t->name, t->version});
    }
    if (!resp->next_cursor.empty() && (resp->next_cursor <= cursor || resp->tags.empty())) {
      return Status(StatusCode::kProtocolError,
                    "ListTags of '" + dataset + "': the page after '" + cursor +
                        "' did not move past it (next '" + resp->next_cursor + "')");
    }
    cursor = resp->next_cursor;
  } while (!cursor.empty());
  return out;
}

}  // namespace sluice::client
