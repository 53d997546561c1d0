"""kws_hpc: precomputed-feature GRU/LSTM keyword spotting on Speech Commands."""

__version__ = "0.1.0"
