"""The Python module and the PyTorch dataset against a real dev cluster.

Run by ctest with Debian's /usr/bin/python3 (python3-torch) and
PYTHONPATH=<build>/python. Starts its own cluster with `sluice dev up` in a
temporary directory and tears it down whatever happens.
"""
import hashlib
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import unittest

import torch
import torch.utils.data

import sluice
import sluice.torch

BUILD = os.environ.get("SLUICE_BUILD_DIR", os.path.join(os.path.dirname(__file__), "../../build"))
SLUICE = os.path.join(BUILD, "tools", "sluice")
N_SAMPLES = 400


def run(*args):
    r = subprocess.run([SLUICE, *args], capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError(f"sluice {' '.join(args)} exited {r.returncode}: {r.stderr}{r.stdout}")
    return r.stdout


def disk_bytes(root):
    """Bytes of record files on disk at one instant.

    A directory walk is not atomic: files created while it runs (replacing
    evicted ones it already counted) would be counted twice. So only files
    that existed when the walk started (changed before it, with a margin for
    the coarse file clock) are counted: a subset of what was on disk then.
    """
    start = time.time_ns() - 20_000_000
    total = 0
    for d, _, files in os.walk(os.path.join(root, "records")):
        for f in files:
            try:
                st = os.stat(os.path.join(d, f))
            except FileNotFoundError:
                continue
            if st.st_ctime_ns < start:
                total += st.st_blocks * 512
    return total


class PrefetchPython(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="sluice-pytest-")
        cls.cluster_dir = os.path.join(cls.tmp, "cluster")
        run("dev", "up", "--nodes", "3", "--dir", cls.cluster_dir)
        cls.config = os.path.join(cls.cluster_dir, "client.toml")
        cls.src = os.path.join(cls.tmp, "src")
        rng = random.Random(3)
        cls.expected = {}
        for i in range(N_SAMPLES):
            rel = f"train/shard{i % 8}/img{i:04d}.bin"
            data = rng.randbytes(rng.randint(20_000, 120_000))
            os.makedirs(os.path.dirname(os.path.join(cls.src, rel)), exist_ok=True)
            with open(os.path.join(cls.src, rel), "wb") as f:
                f.write(data)
            cls.expected[rel] = hashlib.sha256(data).hexdigest()
        run("--cluster", cls.config, "dataset", "create", "imgs")
        run("--cluster", cls.config, "put", cls.src, "imgs", "-q")
        cls.total_bytes = sum(os.path.getsize(os.path.join(cls.src, p)) for p in cls.expected)

    @classmethod
    def tearDownClass(cls):
        subprocess.run([SLUICE, "dev", "down", "--dir", cls.cluster_dir], capture_output=True)
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def prefetcher(self, **kw):
        kw.setdefault("cluster", self.config)
        return sluice.Prefetcher("imgs", "v1", **kw)

    def check(self, path, data):
        self.assertIsInstance(data, memoryview)
        self.assertTrue(data.readonly)
        self.assertEqual(hashlib.sha256(data).hexdigest(), self.expected[path], path)

    def test_ctrl_c_still_raises_keyboard_interrupt(self):
        # libfabric's psm provider (libinfinipath) replaces the process's
        # SIGINT handler when it loads; the module puts Python's back.
        code = ("import os, signal, sluice\n"
                "try:\n"
                "    os.kill(os.getpid(), signal.SIGINT)\n"
                "    signal.pause()\n"
                "except KeyboardInterrupt:\n"
                "    print('KeyboardInterrupt')\n")
        r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("KeyboardInterrupt", r.stdout)

    def test_every_sample_once_with_right_bytes(self):
        p = self.prefetcher(seed=1)
        seen = []
        for path, data in p:
            self.check(path, data)
            seen.append(path)
        self.assertEqual(sorted(seen), sorted(self.expected))
        self.assertEqual(len(p), N_SAMPLES)
        p.set_epoch(1)
        second = [path for path, _ in p]
        self.assertNotEqual(seen, second)
        self.assertEqual(sorted(second), sorted(seen))

    def test_four_ranks_two_workers_exactly_once(self):
        seen = []
        counts = []
        for rank in range(4):
            n = 0
            for worker in range(2):
                p = self.prefetcher(seed=5, rank=rank, world_size=4, num_workers=2, worker=worker,
                                    worker_batch=8)
                for path, _ in p:
                    seen.append(path)
                    n += 1
            counts.append(n)
        self.assertEqual(counts, [N_SAMPLES // 4] * 4)
        self.assertEqual(sorted(seen), sorted(self.expected))

    def test_resume_mid_epoch(self):
        full = [path for path, _ in self.prefetcher(seed=2, epoch=3)]
        p = self.prefetcher(seed=2, epoch=3)
        head = [next(p)[0] for _ in range(123)]
        state = p.state()
        self.assertEqual(state["position"], 123)
        del p
        q = self.prefetcher(seed=2, epoch=3)
        q.resume(state)
        self.assertEqual(head + [path for path, _ in q], full)
        with self.assertRaises(ValueError):
            q.resume(dict(state, seed=99))

    def test_bad_numbers_name_the_argument(self):
        for kwargs, name in (({"cache_size": -1}, "cache_size"), ({"lookahead": -5}, "lookahead"),
                             ({"fetch_threads": 10 ** 6}, "fetch_threads"), ({"shuffle_block": 0}, None)):
            if name is None:
                self.assertEqual(len(list(self.prefetcher(**kwargs))), N_SAMPLES)  # 0 and 1: no blocks
                continue
            with self.assertRaises(ValueError) as ctx:
                self.prefetcher(**kwargs)
            self.assertIn(name, str(ctx.exception))

    def test_shared_cache_budget_across_processes_and_second_reader_fetches_nothing(self):
        cache = os.path.join(self.tmp, "shared-cache")
        budget = self.total_bytes // 2
        script = (
            "import sys, sluice\n"
            "p = sluice.Prefetcher('imgs', 'v1', cluster=sys.argv[1], seed=int(sys.argv[2]),"
            " cache_dir=sys.argv[3], cache_size=int(sys.argv[4]), lookahead='2M')\n"
            "n = sum(1 for _ in p)\n"
            "print(n, p.stats()['fetched_bytes'])\n")
        procs = [subprocess.Popen([sys.executable, "-c", script, self.config, str(seed), cache, str(budget)],
                                  stdout=subprocess.PIPE, text=True) for seed in (1, 2, 3)]
        peak = 0
        while any(p.poll() is None for p in procs):
            peak = max(peak, disk_bytes(cache))
            time.sleep(0.01)
        for p in procs:
            out, _ = p.communicate()
            self.assertEqual(p.returncode, 0)
            self.assertEqual(int(out.split()[0]), N_SAMPLES)
        peak = max(peak, disk_bytes(cache))
        self.assertGreater(peak, 0)
        self.assertLessEqual(peak, budget, f"cache on disk {peak} > budget {budget}")

        # A cache that holds everything: a second process fetches 0 bytes.
        full = os.path.join(self.tmp, "full-cache")
        first = self.prefetcher(seed=1, cache_dir=full, cache_size=4 * self.total_bytes)
        for _ in first:
            pass
        self.assertGreater(first.stats()["fetched_bytes"], 0)
        r = subprocess.run([sys.executable, "-c", script, self.config, "7", full, str(4 * self.total_bytes)],
                           capture_output=True, text=True)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stdout.split(), [str(N_SAMPLES), "0"])

    def test_kill_mid_staging_leaves_a_usable_cache(self):
        cache = os.path.join(self.tmp, "killed-cache")
        script = (
            "import sys, time, sluice\n"
            "p = sluice.Prefetcher('imgs', 'v1', cluster=sys.argv[1], cache_dir=sys.argv[2],"
            " lookahead='64M', fetch_threads=32)\n"
            "print('started', flush=True)\n"
            "next(p)\n"
            "time.sleep(60)\n")
        proc = subprocess.Popen([sys.executable, "-c", script, self.config, cache], stdout=subprocess.PIPE, text=True)
        self.assertEqual(proc.stdout.readline().strip(), "started")
        time.sleep(0.3)  # staging is under way
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        proc.stdout.close()
        p = self.prefetcher(seed=4, cache_dir=cache)
        n = 0
        for path, data in p:
            self.check(path, data)
            n += 1
        self.assertEqual(n, N_SAMPLES)
        self.assertEqual(os.listdir(os.path.join(cache, "tmp")), [])

    def test_torch_dataloader_two_workers(self):
        ds = sluice.torch.Dataset("imgs@v1", cluster=self.config, seed=8, batch_size=16)
        loader = torch.utils.data.DataLoader(ds, batch_size=16, num_workers=2, persistent_workers=True,
                                             collate_fn=lambda batch: batch)
        self.assertEqual(len(ds), N_SAMPLES)
        for epoch in range(2):
            ds.set_epoch(epoch)
            seen = []
            for batch in loader:
                for item in batch:
                    self.assertEqual(hashlib.sha256(item["data"]).hexdigest(), self.expected[item["path"]])
                    seen.append(item["path"])
            self.assertEqual(len(seen), N_SAMPLES)
            self.assertEqual(sorted(seen), sorted(self.expected))
            if epoch == 0:
                first = seen
        self.assertNotEqual(seen, first)

    def test_len_fetches_nothing_into_the_cache(self):
        cache = os.path.join(self.tmp, "len-cache")
        ds = sluice.torch.Dataset("imgs@v1", cluster=self.config, cache_dir=cache, batch_size=4)
        self.assertEqual(len(ds), N_SAMPLES)
        self.assertFalse(os.path.exists(cache), "len() set up the cache and fetched into it")

    def test_paths_are_taken_as_the_cli_takes_them(self):
        # "/a", "./a" and "a" name the same files, as in `sluice get`.
        plain = sorted(p for p, _ in self.prefetcher(prefix="train/shard1", shuffle=False))
        self.assertTrue(plain)
        for prefix in ("/train/shard1/", "./train/shard1"):
            self.assertEqual(sorted(p for p, _ in self.prefetcher(prefix=prefix, shuffle=False)), plain, prefix)
        self.assertEqual([p for p, _ in self.prefetcher(files=["/" + plain[0]])], [plain[0]])

    def test_torch_persistent_workers_outlast_a_paused_metadata_server(self):
        ds = sluice.torch.Dataset("imgs@v1", cluster=self.config, seed=11, batch_size=16)
        loader = torch.utils.data.DataLoader(ds, batch_size=16, num_workers=2, persistent_workers=True,
                                             collate_fn=lambda batch: [x["path"] for x in batch])
        ds.set_epoch(0)
        first = [p for batch in loader for p in batch]
        self.assertEqual(sorted(first), sorted(self.expected))
        meta_pid = None
        with open(os.path.join(self.cluster_dir, "cluster.state")) as f:
            for line in f:
                fields = line.split("\t")
                if fields[0] == "meta":
                    meta_pid = int(fields[1])
        self.assertIsNotNone(meta_pid)
        os.kill(meta_pid, signal.SIGSTOP)
        try:
            # The next epoch needs nothing from meta: the workers keep their
            # prefetchers and the records come from the nodes.
            ds.set_epoch(1)
            second = [p for batch in loader for p in batch]
        finally:
            os.kill(meta_pid, signal.SIGCONT)
        self.assertEqual(sorted(second), sorted(self.expected))
        self.assertNotEqual(second, first)

    def test_torch_resume_from_state_dict(self):
        def order(ds):
            loader = torch.utils.data.DataLoader(ds, batch_size=10, num_workers=2,
                                                 collate_fn=lambda b: [x["path"] for x in b])
            return [p for batch in loader for p in batch]

        ds = sluice.torch.Dataset("imgs@v1", cluster=self.config, seed=3, batch_size=10)
        ds.set_epoch(1)
        full = order(ds)
        state = ds.state_dict(num_samples=170)
        again = sluice.torch.Dataset("imgs@v1", cluster=self.config, seed=3, batch_size=10)
        again.load_state_dict(state)
        self.assertEqual(order(again), full[170:])
        # The README's loop: load_state_dict, then set_epoch(saved epoch)
        # keeps the resume point; a checkpoint taken 30 samples into the
        # resumed iteration is 200 into the epoch.
        looped = sluice.torch.Dataset("imgs@v1", cluster=self.config, seed=3, batch_size=10)
        looped.load_state_dict(state)
        looped.set_epoch(1)
        self.assertEqual(order(looped), full[170:])
        later = looped.state_dict(num_samples=30)
        self.assertEqual(later["position"], 200)
        third = sluice.torch.Dataset("imgs@v1", cluster=self.config, seed=3, batch_size=10)
        third.load_state_dict(later)
        third.set_epoch(1)
        self.assertEqual(order(third), full[200:])
        # The next epoch starts from its beginning.
        third.set_epoch(2)
        self.assertEqual(len(order(third)), N_SAMPLES)
        # Another rank's state, or nonsense, is refused.
        other = dict(state, rank=1)
        with self.assertRaises(ValueError):
            again.load_state_dict(other)
        with self.assertRaises(ValueError):
            again.state_dict(num_samples=-1)
        # A transform sees the zero-copy view.
        tds = sluice.torch.Dataset("imgs@v1", cluster=self.config, seed=3,
                                   transform=lambda path, data: torch.frombuffer(bytearray(data), dtype=torch.uint8).sum())
        self.assertEqual(len(list(iter(tds))), N_SAMPLES)


if __name__ == "__main__":
    unittest.main(verbosity=2)
