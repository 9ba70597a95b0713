"""Datasets: manifests (CSV/Parquet), audformat databases, bare folders, the bundled corpus."""

from .corpus import corpus_path
from .dataset import Dataset, load_corpus, load_dataset

__all__ = ["Dataset", "corpus_path", "load_corpus", "load_dataset"]
