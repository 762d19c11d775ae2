#!/usr/bin/env bash
# make demo: a local cluster on loopback, a sample dataset uploaded as two
# versions, read back and checked file by file, then everything torn down.
set -euo pipefail

build=${1:-build}
sluice="$(cd "$build" && pwd)/tools/sluice"
work=$(mktemp -d /tmp/sluice-demo-XXXXXX)
export SLUICE_DEV_DIR="$work/cluster"

cleanup() {
  if grep -q " $work/mnt " /proc/self/mounts 2>/dev/null; then "$sluice" umount --lazy "$work/mnt" >/dev/null 2>&1 || true; fi
  "$sluice" dev down --dir "$SLUICE_DEV_DIR" >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

step "Starting a local cluster: sluice-meta and 3 storage nodes on 127.0.0.1"
"$sluice" dev up --nodes 3 --replication 2

step "Making a sample dataset: 3,000 small files and 3 large ones"
python3 - "$work/sample" <<'PY'
import os, random, sys
root = sys.argv[1]
rng = random.Random(42)
words = ["cat", "dog", "tensor", "label", "epoch", "0.5", "batch", "image", "token"]
for i in range(3000):
    d = os.path.join(root, "train", f"shard{i % 30:02d}")
    os.makedirs(d, exist_ok=True)
    if i % 3 == 0:  # text-like: compresses
        data = " ".join(rng.choice(words) for _ in range(rng.randint(1000, 4000))).encode()
    else:           # image-like: does not
        data = rng.randbytes(rng.randint(8000, 40000))
    with open(os.path.join(d, f"sample{i:05d}.bin"), "wb") as f:
        f.write(data)
os.makedirs(os.path.join(root, "big"), exist_ok=True)
for n, size in (("model.bin", 48 << 20), ("embeddings.bin", 24 << 20), ("corpus.txt", 12 << 20)):
    with open(os.path.join(root, "big", n), "wb") as f:
        if n.endswith(".txt"):
            f.write((" ".join(rng.choice(words) for _ in range(size // 5))).encode()[:size])
        else:
            f.write(rng.randbytes(size))
PY
du -sh "$work/sample" | awk '{print "sample size: " $1}'

step "sluice dataset create demo"
"$sluice" dataset create demo --replication 2

step "sluice put sample demo   (v1)"
"$sluice" put "$work/sample" demo -m "first import"

step "Changing ~1% of the files and adding one"
python3 - "$work/sample" <<'PY'
import os, random, sys
root = sys.argv[1]
rng = random.Random(7)
for i in rng.sample(range(3000), 30):
    p = os.path.join(root, "train", f"shard{i % 30:02d}", f"sample{i:05d}.bin")
    with open(p, "wb") as f:
        f.write(rng.randbytes(20000))
with open(os.path.join(root, "train", "NEW-labels.csv"), "w") as f:
    f.write("\n".join(f"{i},{rng.randint(0, 999)}" for i in range(5000)))
PY

step "sluice put sample demo   (v2: only the changes are stored)"
"$sluice" put "$work/sample" demo -m "fix 30 samples, add labels" --tag clean

step "sluice diff demo@v1 demo@v2"
"$sluice" diff demo@v1 demo@v2 | tail -5

step "sluice versions demo"
"$sluice" versions demo

step "sluice get demo@v2 -> reading every file back and comparing with the source"
"$sluice" get demo@v2 "$work/readback"
if diff -r "$work/sample" "$work/readback" >/dev/null; then
  echo "all $(find "$work/sample" -type f | wc -l) files match the source byte for byte"
else
  echo "MISMATCH between the source and what was read back" >&2
  exit 1
fi

step "sluice mount $work/mnt   (read-only: /<dataset>/<version or tag>/<path>)"
mkdir -p "$work/mnt"
"$sluice" mount "$work/mnt" --cache-dir "$work/cache" --cache-size 1G
ls -l "$work/mnt/demo"
echo "ls $work/mnt/demo/clean/train | head -3:"
ls "$work/mnt/demo/clean/train" | head -3

step "Reading every file of demo@v2 through the mount (diff -r against the source)"
start=$(date +%s.%N)
if diff -r "$work/sample" "$work/mnt/demo/v2" >/dev/null; then
  end=$(date +%s.%N)
  echo "all $(find "$work/mnt/demo/v2" -type f | wc -l) files match through the mount ($(python3 -c "print(f'{$end-$start:.1f}')") s)"
else
  echo "MISMATCH between the source and the mount" >&2
  exit 1
fi
if [ ! -e "$work/mnt/demo/v1/train/NEW-labels.csv" ]; then
  echo "demo@v1 is unchanged (no NEW-labels.csv); demo@v2 has it: $(wc -l < "$work/mnt/demo/v2/train/NEW-labels.csv") lines"
fi
echo "writes are refused:"
(echo x > "$work/mnt/demo/v2/new-file") 2>&1 | sed 's/^/  /' || true

step "Reading demo@v2 through the prefetch API (Python, shuffled, staged into the node-local cache)"
PYTHONPATH="$(cd "$build" && pwd)/python" /usr/bin/python3 - "$work" <<'PY'
import hashlib, os, sys, time
import sluice
work = sys.argv[1]
config = os.path.join(work, "cluster", "client.toml")
def epoch(name):
    p = sluice.Prefetcher("demo", "v2", cluster=config, prefix="train", seed=1, cache_dir=os.path.join(work, "cache"))
    t, n, nbytes, bad = time.time(), 0, 0, 0
    for path, data in p:
        n, nbytes = n + 1, nbytes + len(data)
        with open(os.path.join(work, "sample", path), "rb") as f:
            bad += f.read() != data
    s = p.stats()
    print(f"{name}: {n} samples, {nbytes / 2**20:.1f} MiB in {time.time() - t:.2f} s, {bad} mismatches; "
          f"{s['fetched_bytes'] / 2**20:.1f} MiB fetched from the cluster, {s['cache_hits']} records from the "
          f"node-local cache, consumer stalled {s['stall_seconds']:.2f} s")
    if bad:
        sys.exit(1)
epoch("reader 1 (the mount above already filled the shared cache)")
epoch("reader 2                                                ")
PY

step "sluice mount --stats $work/mnt"
"$sluice" mount --stats "$work/mnt"
"$sluice" umount "$work/mnt"

step "sluice status"
"$sluice" status

step "Tearing down"
"$sluice" dev down --dir "$SLUICE_DEV_DIR"
echo "demo finished"
