"""Sluice: versioned datasets for GPU training clusters.

    import sluice
    p = sluice.Prefetcher("imagenet", "v3", seed=42, epoch=0, rank=0, world_size=8,
                          cache_dir="/nvme/sluice-cache", cache_size="200G")
    for path, data in p:          # data: a read-only memoryview, no copy
        ...

``sluice.torch.Dataset`` wraps it as a PyTorch IterableDataset.
The cluster is found as the CLI finds it: ``cluster=`` a client config
file, else $SLUICE_CLUSTER, $SLUICE_META, or the dev cluster.
"""
from ._sluice import Prefetcher, SampleBuffer

__all__ = ["Prefetcher", "SampleBuffer"]
