"""Small pieces every room uses: the user-error type, the rich console, atomic writes, JSONL reading,
content fingerprints, the distributed rank and the machine/library description."""
