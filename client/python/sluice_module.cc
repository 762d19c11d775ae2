// The `sluice` Python module's native part (_sluice): the prefetcher, with
// samples handed out as memoryviews of the prefetcher's own buffers (no
// copy). sluice/__init__.py and sluice/torch.py build on it.
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <memory>

#include "client/cluster.h"
#include "client/cluster_config.h"
#include "client/prefetcher.h"
#include "common/core/units.h"

namespace py = pybind11;

namespace sluice::python {
namespace {

[[noreturn]] void raise(const Status& s) {
  if (s.code() == StatusCode::kNotFound) throw py::key_error(s.toString());
  if (s.code() == StatusCode::kInvalidArgument) throw py::value_error(s.toString());
  throw std::runtime_error(s.toString());
}

template <typename T>
T unwrap(Result<T> r) {
  if (!r.isOk()) raise(r.status());
  return std::move(*r);
}

uint64_t sizeArg(const py::object& v, const char* name) {
  if (py::isinstance<py::int_>(v)) {
    // A negative int would fail pybind's cast with "Unable to cast Python
    // instance to C++ type", which names nothing.
    if (v.cast<py::int_>() < py::int_(0)) {
      throw py::value_error(std::string(name) + ": a number of bytes must not be negative, not " +
                            py::str(v).cast<std::string>());
    }
    return v.cast<uint64_t>();
  }
  if (py::isinstance<py::str>(v)) {
    auto r = parseSize(v.cast<std::string>());
    if (!r.isOk()) throw py::value_error(std::string(name) + ": " + r.status().message());
    return *r;
  }
  throw py::type_error(std::string(name) + ": give bytes as an int or a string like '10G'");
}

// Keeps a sample's bytes alive for as long as a memoryview of them exists.
struct SampleBuffer {
  std::shared_ptr<const client::SampleBytes> bytes;
};

class PyPrefetcher {
 public:
  PyPrefetcher(const std::string& dataset, const std::string& version, const std::string& cluster,
               std::vector<std::string> files, const std::string& prefix, uint64_t seed, uint32_t epoch,
               uint32_t rank, uint32_t world_size, bool shuffle, uint32_t shuffle_block,
               bool drop_last, uint32_t num_workers, uint32_t worker, uint32_t worker_batch,
               const std::string& cache_dir, const py::object& cache_size,
               const py::object& lookahead, size_t fetch_threads, const std::string& eviction) {
    client::PrefetchOptions o;
    o.dataset = dataset;
    o.version = version;
    o.files = std::move(files);
    o.prefix = prefix;
    o.order.seed = seed;
    o.order.epoch = epoch;
    o.order.rank = rank;
    o.order.world_size = world_size;
    o.order.shuffle = shuffle;
    o.order.shuffle_block = shuffle_block;
    o.order.drop_last = drop_last;
    o.order.num_workers = num_workers;
    o.order.worker = worker;
    o.order.worker_batch = worker_batch;
    o.cache_dir = cache_dir;
    o.cache_bytes = sizeArg(cache_size, "cache_size");
    o.lookahead_bytes = sizeArg(lookahead, "lookahead");
    o.fetch_threads = fetch_threads;
    if (eviction == "planned") {
      o.eviction = client::Eviction::kPlanned;
    } else if (eviction == "lru") {
      o.eviction = client::Eviction::kLru;
    } else {
      throw py::value_error("eviction: 'planned' or 'lru', not '" + eviction + "'");
    }
    py::gil_scoped_release release;
    auto config = unwrap(client::resolveClusterConfig(cluster));
    cluster_ = unwrap(client::Cluster::connect(config));
    prefetcher_ = unwrap(client::Prefetcher::create(*cluster_, o));
  }

  ~PyPrefetcher() {
    py::gil_scoped_release release;
    prefetcher_.reset();
    cluster_.reset();
  }

  py::object next() {
    auto r = [&] {
      py::gil_scoped_release release;
      return prefetcher_->next();
    }();
    if (!r.isOk()) raise(r.status());
    if (!*r) throw py::stop_iteration();
    auto holder = std::make_shared<SampleBuffer>(SampleBuffer{(*r)->bytes});
    py::object owner = py::cast(holder);
    return py::make_tuple(*(*r)->path, py::memoryview(owner));
  }

  py::dict state() const {
    auto s = prefetcher_->state();
    py::dict d;
    d["epoch"] = s.epoch;
    d["position"] = s.position;
    d["seed"] = s.seed;
    d["world_size"] = s.world_size;
    d["rank"] = s.rank;
    return d;
  }

  void resume(const py::dict& d) {
    client::PrefetchState s;
    s.epoch = d["epoch"].cast<uint32_t>();
    s.position = d["position"].cast<uint64_t>();
    s.seed = d["seed"].cast<uint64_t>();
    s.world_size = d["world_size"].cast<uint32_t>();
    s.rank = d["rank"].cast<uint32_t>();
    Status st;
    {
      py::gil_scoped_release release;
      st = prefetcher_->resume(s);
    }
    if (!st.isOk()) raise(st);
  }

  void setEpoch(uint32_t epoch) {
    py::gil_scoped_release release;
    prefetcher_->setEpoch(epoch);
  }

  py::dict stats() const {
    auto s = prefetcher_->stats();
    py::dict d;
    d["samples"] = s.samples;
    d["bytes"] = s.bytes;
    d["cache_hits"] = s.cache_hits;
    d["cache_misses"] = s.cache_misses;
    d["fetched_bytes"] = s.fetched_bytes;
    d["stall_seconds"] = s.stall_seconds;
    d["stall_p50_s"] = s.stall_p50_s;
    d["stall_p90_s"] = s.stall_p90_s;
    d["stall_p99_s"] = s.stall_p99_s;
    return d;
  }

  size_t length() const { return prefetcher_->samplesPerEpoch(); }
  uint64_t rankLength() const { return prefetcher_->rankLength(); }
  std::vector<std::string> files() const {
    std::vector<std::string> out;
    for (const auto& f : prefetcher_->files()) out.push_back(f.path);
    return out;
  }

 private:
  std::unique_ptr<client::Cluster> cluster_;
  std::unique_ptr<client::Prefetcher> prefetcher_;
};

}  // namespace
}  // namespace sluice::python

PYBIND11_MODULE(_sluice, m) {
  using sluice::python::PyPrefetcher;
  using sluice::python::SampleBuffer;
  m.doc() = "Sluice: versioned datasets for GPU training clusters (native part)";
  // Loading libfabric loads libinfinipath (its psm provider), whose
  // constructor puts its own SIGINT and SIGTERM handlers in place of the
  // interpreter's: Ctrl-C then ended a training script with exit code 1
  // instead of raising KeyboardInterrupt. Setting Python's handlers again
  // puts the interpreter's back. Only the main thread may set them; an
  // import elsewhere keeps the provider's.
  try {
    py::module_ signal = py::module_::import("signal");
    for (const char* name : {"SIGINT", "SIGTERM"}) {
      py::object sig = signal.attr(name);
      py::object handler = signal.attr("getsignal")(sig);
      if (!handler.is_none()) signal.attr("signal")(sig, handler);
    }
  } catch (const py::error_already_set&) {
  }
  py::class_<SampleBuffer, std::shared_ptr<SampleBuffer>>(m, "SampleBuffer", py::buffer_protocol())
      .def_buffer([](SampleBuffer& b) -> py::buffer_info {
        return py::buffer_info(const_cast<uint8_t*>(b.bytes->data.get()), 1,
                               py::format_descriptor<uint8_t>::format(), 1,
                               {static_cast<py::ssize_t>(b.bytes->size)}, {1}, /*readonly=*/true);
      });
  py::class_<PyPrefetcher>(m, "Prefetcher")
      .def(py::init<const std::string&, const std::string&, const std::string&, std::vector<std::string>,
                    const std::string&, uint64_t, uint32_t, uint32_t, uint32_t, bool, uint32_t, bool,
                    uint32_t, uint32_t, uint32_t, const std::string&, const py::object&,
                    const py::object&, size_t, const std::string&>(),
           py::arg("dataset"), py::arg("version") = "latest", py::arg("cluster") = "",
           py::arg("files") = std::vector<std::string>{}, py::arg("prefix") = "", py::arg("seed") = 0,
           py::arg("epoch") = 0, py::arg("rank") = 0, py::arg("world_size") = 1,
           py::arg("shuffle") = true, py::arg("shuffle_block") = 1, py::arg("drop_last") = false,
           py::arg("num_workers") = 1, py::arg("worker") = 0, py::arg("worker_batch") = 1,
           py::arg("cache_dir") = "", py::arg("cache_size") = py::int_(10ull << 30),
           py::arg("lookahead") = py::int_(256ull << 20), py::arg("fetch_threads") = 16,
           py::arg("eviction") = "planned")
      .def("__iter__", [](PyPrefetcher& p) -> PyPrefetcher& { return p; }, py::return_value_policy::reference_internal)
      .def("__next__", &PyPrefetcher::next)
      .def("__len__", &PyPrefetcher::length)
      .def("state", &PyPrefetcher::state)
      .def("resume", &PyPrefetcher::resume)
      .def("set_epoch", &PyPrefetcher::setEpoch)
      .def("stats", &PyPrefetcher::stats)
      .def_property_readonly("rank_length", &PyPrefetcher::rankLength)
      .def_property_readonly("files", &PyPrefetcher::files);
}
