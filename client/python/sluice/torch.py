"""sluice.torch.Dataset: a torch IterableDataset over a Sluice version.

    ds = sluice.torch.Dataset("imagenet@v3", seed=42, batch_size=256,
                              cache_dir="/nvme/sluice-cache", transform=decode)
    loader = torch.utils.data.DataLoader(ds, batch_size=256, num_workers=8,
                                         persistent_workers=True)
    for epoch in range(start_epoch, epochs):
        ds.set_epoch(epoch)
        for step, batch in enumerate(loader):
            ...
            if step % 1000 == 0:
                save({"data": ds.state_dict(num_samples=(step + 1) * 256), ...})
    # later: ds.load_state_dict(saved["data"]), then the same loop from the
    # saved epoch: only the samples not yet consumed in it come back, and
    # state_dict counts on from the resume point.

Work is split across ranks (torch.distributed, else $RANK/$WORLD_SIZE)
and DataLoader workers (get_worker_info). Every rank gets the same number
of samples; with drop_last=False the short ranks repeat a few samples.
``batch_size`` must be the DataLoader's: workers take whole batches in
turn, which is the order the DataLoader returns them, so a count of
consumed samples is an exact resume point.

Samples are ``transform(path, memoryview)`` when a transform is given
(called in the worker, on the prefetcher's buffer: no copy), else
``{"path": path, "data": bytes}``.
"""
import multiprocessing
import os

import torch.utils.data

from ._sluice import Prefetcher


def _rank_and_world():
    import torch.distributed as dist
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))


class Dataset(torch.utils.data.IterableDataset):
    def __init__(self, ref, *, cluster="", files=None, prefix="", seed=0, shuffle=True,
                 shuffle_block=1, drop_last=False, batch_size=1, rank=None, world_size=None,
                 cache_dir="", cache_size=10 << 30, lookahead=256 << 20, fetch_threads=16,
                 eviction="planned", transform=None):
        super().__init__()
        dataset, _, version = ref.partition("@")
        if not dataset:
            raise ValueError(f"dataset reference {ref!r}: expected DATASET[@VERSION]")
        if batch_size < 1:
            raise ValueError("batch_size must be at least 1")
        r, w = _rank_and_world()
        self.dataset, self.version = dataset, version or "latest"
        self.rank = r if rank is None else rank
        self.world_size = w if world_size is None else world_size
        self.options = dict(cluster=cluster, files=list(files or []), prefix=prefix, seed=seed,
                            shuffle=shuffle, shuffle_block=shuffle_block, drop_last=drop_last,
                            cache_dir=cache_dir, cache_size=cache_size, lookahead=lookahead,
                            fetch_threads=fetch_threads, eviction=eviction)
        self.batch_size = batch_size
        self.transform = transform
        # Shared with (persistent) worker processes, which copy the dataset
        # once: set_epoch and load_state_dict in the main process reach them.
        self._epoch = multiprocessing.Value("q", 0)
        self._start = multiprocessing.Value("q", 0)
        self._length = None

    def set_epoch(self, epoch):
        """Starts `epoch` at the next iteration: from its beginning, or, when
        it is the epoch load_state_dict resumes, from the resume point (so the
        usual loop, load_state_dict then set_epoch(start_epoch), resumes)."""
        epoch = int(epoch)
        if epoch < 0:
            raise ValueError(f"epoch must not be negative, not {epoch}")
        with self._epoch.get_lock():
            if epoch != self._epoch.value:
                self._start.value = 0
            self._epoch.value = epoch

    def state_dict(self, num_samples):
        """A resume point: `num_samples` of this rank consumed since this
        epoch's iteration began (an iteration that resumed counts from its
        resume point, which is added here)."""
        if isinstance(num_samples, bool) or not isinstance(num_samples, int) or num_samples < 0:
            raise ValueError(f"num_samples must be a count of samples (an int >= 0), not {num_samples!r}")
        return {"epoch": self._epoch.value, "position": self._start.value + num_samples,
                "seed": self.options["seed"], "world_size": self.world_size, "rank": self.rank}

    def load_state_dict(self, state):
        """Resumes from a state_dict of this rank at the next iteration."""
        if state["seed"] != self.options["seed"] or state["world_size"] != self.world_size:
            raise ValueError(f"state saved with seed {state['seed']} and world_size {state['world_size']}; "
                             f"this dataset has seed {self.options['seed']} and world_size {self.world_size}")
        if state.get("rank", self.rank) != self.rank:
            raise ValueError(f"state saved by rank {state['rank']}; this dataset is rank {self.rank}: "
                             f"each rank loads its own")
        epoch, position = int(state["epoch"]), int(state["position"])
        if epoch < 0 or position < 0:
            raise ValueError(f"state with epoch {epoch} and position {position}: neither may be negative")
        with self._epoch.get_lock():
            self._epoch.value = epoch
            self._start.value = position

    def _prefetcher(self, worker, num_workers, **overrides):
        p = Prefetcher(self.dataset, self.version, rank=self.rank, world_size=self.world_size,
                       epoch=self._epoch.value, num_workers=num_workers, worker=worker,
                       worker_batch=self.batch_size, **dict(self.options, **overrides))
        if self._start.value:
            p.resume({"epoch": self._epoch.value, "position": self._start.value,
                      "seed": self.options["seed"], "world_size": self.world_size, "rank": self.rank})
        return p

    def __len__(self):
        """Samples this rank yields per epoch."""
        if self._length is None:
            # Only the count is wanted: no cache, and as little fetched as the
            # prefetcher allows (one sample) before it is dropped.
            self._length = self._prefetcher(0, 1, cache_dir="", lookahead=1, fetch_threads=1).rank_length
        return self._length

    def __getstate__(self):
        # A worker process gets its own prefetcher (one holds threads).
        state = self.__dict__.copy()
        state.pop("_kept", None)
        return state

    def __iter__(self):
        info = torch.utils.data.get_worker_info()
        worker, num_workers = (info.id, info.num_workers) if info is not None else (0, 1)
        # A persistent worker keeps its prefetcher from epoch to epoch and
        # only moves it to the next epoch (or the resume point): no call to
        # meta, so training goes on across a metadata server restart. Keyed
        # by process too: a forked worker must not use its parent's.
        key = (os.getpid(), worker, num_workers)
        kept = getattr(self, "_kept", None)
        if kept is not None and kept[0] == key:
            p = kept[1]
            epoch, start = self._epoch.value, self._start.value
            if start:
                p.resume({"epoch": epoch, "position": start, "seed": self.options["seed"],
                          "world_size": self.world_size, "rank": self.rank})
            else:
                p.set_epoch(epoch)
        else:
            p = self._prefetcher(worker, num_workers)
            self._kept = (key, p)
        for path, data in p:
            if self.transform is not None:
                yield self.transform(path, data)
            else:
                yield {"path": path, "data": bytes(data)}
