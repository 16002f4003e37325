"""harness: an evaluation-centric benchmarking harness for sequential LLM fine-tuning."""

__version__ = "0.1.0"
