"""Benchmark construction: build-kg (ECKGBench-style), build-qa (ChineseEcomQA-style), the human
review queue and web UI, and ConceptMath weak-concept training. See docs/bench-build.md."""

from longlore.bench.build.config import KGBuildConfig, QABuildConfig, WeakConceptConfig

__all__ = ["KGBuildConfig", "QABuildConfig", "WeakConceptConfig"]
