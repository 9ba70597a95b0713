"""Datasets: manifests (CSV/Parquet), audformat databases, bare folders, the bundled corpus."""

from .dataset import Dataset, load_dataset
from .corpus import corpus_path, load_corpus

__all__ = ["Dataset", "corpus_path", "load_corpus", "load_dataset"]
