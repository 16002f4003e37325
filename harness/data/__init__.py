"""Data ingestion: the domain corpus (documents, text cleanup, sections, held-out split), counseling conversations,
safety prompts, chat formatting, and `data inspect`'s statistics and leakage check."""
