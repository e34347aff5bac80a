"""Step 3: validate the question/SQL pairs of step 2 against the business database, repair what fails.

Parts, in the order a pair meets them: ``guard`` (static allow-list: one read-only query, nothing
else reaches the database), ``validator`` (EXPLAIN and a LIMIT 1 run in a read-only, timed-out,
rolled-back transaction on a bounded pool), ``repair`` / ``heuristic`` (an LLM or offline rules
propose a fix, which goes through the guard and the database again), ``pair_check`` (the per-pair
loop), ``pair_file`` and ``report`` (the files), ``step`` (the entry point ``run_sql_validation``).
"""
