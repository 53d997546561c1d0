"""Stage 2, features: the log-mel front-end (offline and live), the HDF5 store (its reader and writer),
and the feature job that builds a store once per signature."""

from kws_hpc.lazy import exports

__getattr__, __dir__ = exports(__name__, {
    "log_mel": "logmel", "build_store": "build", "open_store": "store", "load_split": "store",
    "check_compatible": "store", "StoreInfo": "store", "SplitData": "store",
})
