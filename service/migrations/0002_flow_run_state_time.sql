-- When Prefect entered the state in last_flow_run_state. Two writers (the mirror's poll and the REST
-- API's refresh) may read the same flow run at different moments; the one holding the older state
-- must not overwrite the newer (a cancelled task shown as running again).
ALTER TABLE data_pipeline_tasks ADD COLUMN last_flow_run_state_at timestamptz;
