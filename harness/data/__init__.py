"""Data ingestion: the domain corpus (PDF text cleanup, sections, held-out split), counseling conversations,
safety prompts, chat formatting, and `data inspect`'s statistics and leakage check."""
