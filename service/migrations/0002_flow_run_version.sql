-- The flow run's update time in Prefect (the server's clock, whoever proposed the state) as last
-- mirrored. Two writers (the mirror's poll and the REST API's refresh) may read the same flow run at
-- different moments; the one holding the older read must not overwrite the newer (a cancelled task
-- shown as running again).
ALTER TABLE data_pipeline_tasks ADD COLUMN prefect_updated_at timestamptz;
