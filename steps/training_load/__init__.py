"""Step 4: the task's training data into the vector store, and a retrieval check.

Parts: ``items`` (files -> items with content-derived ids), ``chunking`` (DDL and markdown cut to the
embedding window), ``store`` (Vanna's pgvector tables or the plain fallback), ``sync`` (the one write
transaction), ``backup`` (CSV backup and restore), ``retrieval`` (recall@k) and ``step``
(``run_training_load``, the entry point).
"""
