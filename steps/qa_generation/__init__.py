"""Step 2: from step 1's data dictionaries to business themes and question/SQL pairs.

Entry point: ``steps.qa_generation.step.run_qa_generation``. A provider (``heuristic`` offline
templates, or ``openai`` for any OpenAI-compatible model) proposes themes per group of related tables
and writes pairs per theme; the step cleans, deduplicates and writes them with the theme metadata.
"""
