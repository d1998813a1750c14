"""longlore: ten recent LLM research systems in one PyTorch + transformers codebase."""

__version__ = "0.1.0"
