"""Step 1: from the tables of a table list to DDL files and markdown data dictionaries."""
