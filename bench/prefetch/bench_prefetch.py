"""bench_prefetch: an MLPerf-Storage-like training loop over Sluice.

One process per simulated accelerator (a rank of world_size k). Each step
loads a batch of samples in the rank's shuffled order, then sleeps for the
batch's compute time. Accelerator utilization AU = compute time / wall time,
the first step excluded. Shaped like ResNet50 (~112 KiB samples, batch 400,
0.224 s per batch), scaled down 10x in batch and compute (batch 40, 22.4 ms)
so that several accelerators fit this 2-core machine: the same bytes per
second per accelerator (~196 MB/s).

Three ways to load, on the same data and order, in the same run:
  prefetch  sluice.Prefetcher (staged ahead into a node-local cache)
  fuse      open/read of each file through a fresh `sluice mount`
  local     open/read of each file from the uploaded local ext4 copy

Then the cache: second-epoch bytes from the cluster when the cache holds the
dataset, and with a cache of 50% of it (hit rate, planned vs LRU eviction).

  /usr/bin/python3 bench/prefetch/bench_prefetch.py [--samples 8000] [--accelerators 1,2,4,8]
"""
import argparse
import multiprocessing as mp
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time

BUILD = os.environ.get("SLUICE_BUILD_DIR", os.path.join(os.path.dirname(os.path.abspath(__file__)), "../../build"))
sys.path.insert(0, os.path.join(BUILD, "python"))
import sluice  # noqa: E402

SLUICE = os.path.join(BUILD, "tools", "sluice")


def sh(*args):
    r = subprocess.run(args, capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError(f"{' '.join(args)}: {r.stderr}{r.stdout}")
    return r.stdout


def drop_caches():
    os.sync()
    with open("/proc/sys/vm/drop_caches", "w") as f:
        f.write("3")


def accelerator(mode, rank, world, args, files_root, config, cache, barrier, out):
    batch, compute = args.batch, args.compute
    first_samples = first_bytes = 0
    if mode == "prefetch":
        p = sluice.Prefetcher("bench", "v1", cluster=config, seed=1, rank=rank, world_size=world,
                              cache_dir=cache, cache_size=args.cache_size, lookahead=args.lookahead)
        it = (len(data) for _, data in p)
    else:
        order = _orders[(world, rank)]

        def reads():
            for rel in order:
                with open(os.path.join(files_root, rel), "rb") as f:
                    yield len(f.read())
        it = reads()
    barrier.wait()
    steps, nbytes, samples = 0, 0, 0
    t_first = None
    start = time.perf_counter()
    done = False
    while not done:
        for _ in range(batch):
            try:
                n = next(it)
            except StopIteration:
                done = True
                break
            nbytes += n
            samples += 1
        if done and samples % batch == 0:
            break
        time.sleep(compute)
        steps += 1
        if steps == 1:
            t_first = time.perf_counter()
            first_samples, first_bytes = samples, nbytes
    end = time.perf_counter()
    timed_steps = steps - 1
    wall = end - (t_first or start)
    au = timed_steps * compute / wall if wall > 0 and timed_steps > 0 else 0.0
    out.put((au, samples - first_samples, nbytes - first_bytes, wall))


# (world, rank) -> the rank's file order, the prefetcher's own (same seed);
# filled before the accelerator processes fork.
_orders = {}


def run_mode(mode, k, args, root, config):
    cache = os.path.join(root, f"cache-{mode}-{k}")
    files_root = {"local": os.path.join(root, "src"), "fuse": os.path.join(root, "mnt", "bench", "v1"),
                  "prefetch": None}[mode]
    drop_caches()
    barrier = mp.Barrier(k)
    out = mp.Queue()
    procs = [mp.Process(target=accelerator, args=(mode, r, k, args, files_root, config, cache, barrier, out))
             for r in range(k)]
    for p in procs:
        p.start()
    results = [out.get() for _ in procs]
    for p in procs:
        p.join()
    shutil.rmtree(cache, ignore_errors=True)
    au = min(r[0] for r in results)
    wall = max(r[3] for r in results)
    samples = sum(r[1] for r in results)
    nbytes = sum(r[2] for r in results)
    return au, samples / wall, nbytes / wall / 2**20


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--samples", type=int, default=8000)
    ap.add_argument("--sample-kib", type=int, default=112)
    ap.add_argument("--batch", type=int, default=40)
    ap.add_argument("--compute", type=float, default=0.0224)
    ap.add_argument("--accelerators", default="1,2,4,8")
    ap.add_argument("--lookahead", default="64M")
    ap.add_argument("--cache-size", default="4G")
    args = ap.parse_args()
    root = tempfile.mkdtemp(prefix="sluice-bench-prefetch-")
    cluster = os.path.join(root, "cluster")
    try:
        sh(SLUICE, "dev", "up", "--nodes", "3", "--dir", cluster)
        config = os.path.join(cluster, "client.toml")
        rng = random.Random(1)
        for i in range(args.samples):
            rel = f"train/shard{i % 64:02d}/img{i:06d}.jpg"
            path = os.path.join(root, "src", rel)
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(path, "wb") as f:
                f.write(rng.randbytes(args.sample_kib * 1024 * rng.randint(75, 125) // 100))
        sh(SLUICE, "--cluster", config, "dataset", "create", "bench")
        t = time.time()
        sh(SLUICE, "--cluster", config, "put", os.path.join(root, "src"), "bench", "-q")
        total = sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(os.path.join(root, "src")) for f in fs)
        print(f"bench_prefetch: {args.samples} samples, {total / 2**20:.0f} MiB, uploaded in {time.time() - t:.1f} s; "
              f"batch {args.batch}, {args.compute * 1000:.1f} ms compute per batch "
              f"({args.batch * args.sample_kib * 1024 / args.compute / 1e6:.0f} MB/s per accelerator to keep up)")

        ks = [int(x) for x in args.accelerators.split(",")]
        files_by_rank = {}
        # The orders the file readers use: the prefetcher's (same seed), read once.
        for k in ks:
            for r in range(k):
                p = sluice.Prefetcher("bench", "v1", cluster=config, seed=1, rank=r, world_size=k,
                                      lookahead="1M", fetch_threads=4)
                files_by_rank[(k, r)] = [path for path, _ in p]
        _orders.update(files_by_rank)

        mnt = os.path.join(root, "mnt")
        os.makedirs(mnt)
        print(f"\n{'mode':<9} {'accel':>5} {'AU %':>6} {'samples/s':>10} {'MiB/s':>8}")
        best = {}
        for mode in ("local", "fuse", "prefetch"):
            for k in ks:
                if mode == "fuse":
                    sh(SLUICE, "--cluster", config, "mount", mnt)
                try:
                    au, sps, mibs = run_mode(mode, k, args, root, config)
                finally:
                    if mode == "fuse":
                        sh(SLUICE, "umount", mnt)
                print(f"{mode:<9} {k:>5} {au * 100:>6.1f} {sps:>10.0f} {mibs:>8.1f}", flush=True)
                if au >= 0.9:
                    best[mode] = max(best.get(mode, 0), k)
        print("\nlargest number of accelerators at AU >= 90%: " +
              ", ".join(f"{m} {best.get(m, 0)}" for m in ("local", "fuse", "prefetch")))

        # The cache across epochs, one consumer.
        print()
        for label, size, eviction in (("cache holds the dataset", 2 * total, "planned"),
                                      ("cache 50% of the dataset, planned (Belady)", total // 2, "planned"),
                                      ("cache 50% of the dataset, LRU", total // 2, "lru")):
            cache = os.path.join(root, "cache-epochs")
            shutil.rmtree(cache, ignore_errors=True)
            p = sluice.Prefetcher("bench", "v1", cluster=config, seed=3, cache_dir=cache, cache_size=size,
                                  eviction=eviction, lookahead="32M")
            for _ in p:
                pass
            first = p.stats()
            p.set_epoch(1)
            for _ in p:
                pass
            second = p.stats()
            hits = second["cache_hits"] - first["cache_hits"]
            misses = second["cache_misses"] - first["cache_misses"]
            remote = second["fetched_bytes"] - first["fetched_bytes"]
            print(f"{label:<44} epoch 2: {remote / 2**20:8.1f} MiB from the cluster, "
                  f"hit rate {hits / max(1, hits + misses) * 100:5.1f}%")
            del p
            shutil.rmtree(cache, ignore_errors=True)
    finally:
        subprocess.run(["fusermount3", "-u", "-z", os.path.join(root, "mnt")], capture_output=True)
        subprocess.run([SLUICE, "dev", "down", "--dir", cluster], capture_output=True)
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
