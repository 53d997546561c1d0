"""Stage 1, data: where clips come from (a folder or a .tar.gz), the data set's split rule and the
manifest, the built-in synthetic corpus and the official download."""

from kws_hpc.lazy import exports

__getattr__, __dir__ = exports(__name__, {
    "open_source": "source", "decode_wav": "source", "BadClip": "source",
    "Clip": "split", "scan": "split", "select": "split", "hash_split": "split", "resolve_vocab": "split",
    "label_names": "split", "read_manifest": "split", "write_manifest": "split",
    "synth_corpus": "synth", "DEFAULT_WORDS": "synth",
})
