-- Tracking tables: tasks, their step runs (executions), logs, output files, API idempotency keys,
-- and the retention cleanup. Table, column and index names follow the detailed design; additions
-- serve the Prefect mirror (flow/task-run/log ids, state timestamps) and the API.
-- Step names are exactly ddl_generation, qa_generation, sql_validation, training_load: the CHECKs
-- below refuse the orchestrator's other spellings (ddl_md_generation, ...) that split the original.

CREATE TABLE data_pipeline_tasks (
    -- task_YYYYMMDD_HHMMSS_xxxx / manual_...; also a directory name (dp.task_ids.TASK_ID_PATTERN)
    id                  varchar(40) PRIMARY KEY
                        CONSTRAINT data_pipeline_tasks_id_check CHECK (id ~ '^[A-Za-z0-9][A-Za-z0-9_-]*$'),
    task_type           varchar(50) NOT NULL DEFAULT 'complete_workflow',
    status              varchar(20) NOT NULL DEFAULT 'pending'
                        CONSTRAINT data_pipeline_tasks_status_check CHECK (status IN
                            ('pending', 'in_progress', 'partial_completed', 'completed', 'failed', 'cancelled')),
    progress            integer NOT NULL DEFAULT 0
                        CONSTRAINT data_pipeline_tasks_progress_check CHECK (progress BETWEEN 0 AND 100),
    current_step        varchar(50)
                        CONSTRAINT data_pipeline_tasks_current_step_check CHECK (current_step IN
                            ('ddl_generation', 'qa_generation', 'sql_validation', 'training_load')),
    -- exactly the four steps, each pending|running|completed|failed|skipped|cancelled
    step_status         jsonb NOT NULL DEFAULT
                            '{"ddl_generation": "pending", "qa_generation": "pending",
                              "sql_validation": "pending", "training_load": "pending"}'
                        CONSTRAINT data_pipeline_tasks_step_status_check CHECK (
                            jsonb_typeof(step_status) = 'object'
                            AND step_status
                                ?& ARRAY['ddl_generation', 'qa_generation', 'sql_validation', 'training_load']
                            AND step_status
                                - ARRAY['ddl_generation', 'qa_generation', 'sql_validation', 'training_load'] = '{}'::jsonb
                            AND NOT jsonb_path_exists(step_status,
                                'strict $.* ? (@.type() != "string" || !(@ == "pending" || @ == "running"
                                 || @ == "completed" || @ == "failed" || @ == "skipped" || @ == "cancelled"))')),
    -- request parameters with every password masked (the store refuses unmasked ones)
    parameters          jsonb NOT NULL DEFAULT '{}'
                        CONSTRAINT data_pipeline_tasks_parameters_check CHECK (jsonb_typeof(parameters) = 'object'),
    result              jsonb,
    error_message       text,
    error_step          varchar(50)
                        CONSTRAINT data_pipeline_tasks_error_step_check CHECK (error_step IN
                            ('ddl_generation', 'qa_generation', 'sql_validation', 'training_load')),
    created_at          timestamptz NOT NULL DEFAULT now(),
    started_at          timestamptz,
    completed_at        timestamptz,
    updated_at          timestamptz NOT NULL DEFAULT now(),
    created_by          varchar(20) NOT NULL DEFAULT 'api'
                        CONSTRAINT data_pipeline_tasks_created_by_check CHECK (created_by IN
                            ('api', 'manual', 'schedule', 'system')),
    output_directory    text,
    db_name             varchar(100),
    business_context    text,
    -- the Prefect flow run executing the task, as last seen by the mirror
    prefect_flow_run_id uuid CONSTRAINT data_pipeline_tasks_prefect_flow_run_id_key UNIQUE,
    last_flow_run_state text,
    mirrored_at         timestamptz
);

CREATE INDEX idx_tasks_status ON data_pipeline_tasks (status);
CREATE INDEX idx_tasks_created_at ON data_pipeline_tasks (created_at DESC);
CREATE INDEX idx_tasks_db_name ON data_pipeline_tasks (db_name);
CREATE INDEX idx_tasks_created_by ON data_pipeline_tasks (created_by);

-- updated_at moves when anything but the mirror's bookkeeping (mirrored_at) changes
CREATE FUNCTION data_pipeline_tasks_touch() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF (to_jsonb(NEW) - 'updated_at' - 'mirrored_at')
       IS DISTINCT FROM (to_jsonb(OLD) - 'updated_at' - 'mirrored_at') THEN
        NEW.updated_at := now();
    ELSE
        NEW.updated_at := OLD.updated_at;
    END IF;
    RETURN NEW;
END
$$;

CREATE TRIGGER data_pipeline_tasks_touch BEFORE UPDATE ON data_pipeline_tasks
    FOR EACH ROW EXECUTE FUNCTION data_pipeline_tasks_touch();


-- One row per step run (a Prefect task run). Crashed runs are stored as failed; state_name keeps
-- Prefect's own word (Crashed, TimedOut, ...).
CREATE TABLE data_pipeline_task_executions (
    id                  serial PRIMARY KEY,
    task_id             varchar(40) NOT NULL REFERENCES data_pipeline_tasks (id) ON DELETE CASCADE,
    -- <task_id>_<step>_<last 8 hex of the task run id>: stable, so re-mirroring is idempotent
    execution_id        varchar(100) NOT NULL CONSTRAINT data_pipeline_task_executions_execution_id_key UNIQUE,
    execution_step      varchar(50) NOT NULL
                        CONSTRAINT data_pipeline_task_executions_step_check CHECK (execution_step IN
                            ('ddl_generation', 'qa_generation', 'sql_validation', 'training_load')),
    status              varchar(20) NOT NULL
                        CONSTRAINT data_pipeline_task_executions_status_check CHECK (status IN
                            ('pending', 'running', 'completed', 'failed', 'cancelled')),
    state_name          text,
    -- timestamp of the Prefect state this row reflects; an older state never overwrites a newer one
    state_timestamp     timestamptz NOT NULL,
    started_at          timestamptz,
    completed_at        timestamptz,
    duration_seconds    numeric GENERATED ALWAYS AS (EXTRACT(EPOCH FROM (completed_at - started_at))) STORED,
    execution_result    jsonb,
    error_message       text,
    prefect_task_run_id uuid NOT NULL CONSTRAINT data_pipeline_task_executions_prefect_task_run_id_key UNIQUE,
    prefect_flow_run_id uuid
);

CREATE INDEX idx_executions_task_id ON data_pipeline_task_executions (task_id);
CREATE INDEX idx_executions_step ON data_pipeline_task_executions (execution_step);
CREATE INDEX idx_executions_status ON data_pipeline_task_executions (status);
CREATE INDEX idx_executions_started_at ON data_pipeline_task_executions (started_at DESC);
CREATE INDEX idx_executions_flow_run_id ON data_pipeline_task_executions (prefect_flow_run_id);


CREATE TABLE data_pipeline_task_logs (
    id                  bigserial PRIMARY KEY,
    task_id             varchar(40) NOT NULL REFERENCES data_pipeline_tasks (id) ON DELETE CASCADE,
    execution_id        varchar(100) REFERENCES data_pipeline_task_executions (execution_id) ON DELETE SET NULL,
    log_level           varchar(10) NOT NULL
                        CONSTRAINT data_pipeline_task_logs_level_check CHECK (log_level IN
                            ('DEBUG', 'INFO', 'WARNING', 'ERROR', 'CRITICAL')),
    message             text NOT NULL,
    step_name           varchar(50)
                        CONSTRAINT data_pipeline_task_logs_step_check CHECK (step_name IN
                            ('ddl_generation', 'qa_generation', 'sql_validation', 'training_load')),
    module_name         varchar(255),  -- the logger name
    function_name       varchar(100),
    "timestamp"         timestamptz NOT NULL DEFAULT now(),
    extra_data          jsonb NOT NULL DEFAULT '{}',
    -- a log copied from Prefect is copied once: its Prefect id is unique
    prefect_log_id      uuid CONSTRAINT data_pipeline_task_logs_prefect_log_id_key UNIQUE,
    -- lets a log that arrives before its step run's row be linked to it later
    prefect_task_run_id uuid
);

-- (task_id, id) serves both the task filter and the id cursor of log pages
CREATE INDEX idx_logs_task_id ON data_pipeline_task_logs (task_id, id);
CREATE INDEX idx_logs_execution_id ON data_pipeline_task_logs (execution_id);
CREATE INDEX idx_logs_timestamp ON data_pipeline_task_logs ("timestamp" DESC);
CREATE INDEX idx_logs_level ON data_pipeline_task_logs (log_level);
CREATE INDEX idx_logs_step ON data_pipeline_task_logs (step_name);
CREATE INDEX idx_logs_unlinked_task_run ON data_pipeline_task_logs (prefect_task_run_id) WHERE execution_id IS NULL;


CREATE TABLE data_pipeline_task_outputs (
    id                  serial PRIMARY KEY,
    task_id             varchar(40) NOT NULL REFERENCES data_pipeline_tasks (id) ON DELETE CASCADE,
    execution_id        varchar(100) REFERENCES data_pipeline_task_executions (execution_id) ON DELETE SET NULL,
    file_type           varchar(50) NOT NULL,
    file_name           varchar(255) NOT NULL,
    -- relative to the task directory and never leaving it
    file_path           text NOT NULL
                        CONSTRAINT data_pipeline_task_outputs_path_check CHECK (
                            file_path <> '' AND file_path !~ '^/' AND file_path !~ '[\\]'
                            AND file_path !~ '(^|/)\.\.?(/|$)'),
    file_size           bigint NOT NULL DEFAULT 0
                        CONSTRAINT data_pipeline_task_outputs_size_check CHECK (file_size >= 0),
    content_hash        varchar(64)
                        CONSTRAINT data_pipeline_task_outputs_hash_check CHECK (content_hash ~ '^[0-9a-f]{64}$'),
    description         text,
    created_at          timestamptz NOT NULL DEFAULT now(),
    modified_at         timestamptz NOT NULL DEFAULT now(),
    is_primary          boolean NOT NULL DEFAULT false,
    is_downloadable     boolean NOT NULL DEFAULT true,
    -- a rescan upserts; this index also serves the design's idx_outputs_task_id lookups
    CONSTRAINT data_pipeline_task_outputs_task_file_key UNIQUE (task_id, file_path)
);

CREATE INDEX idx_outputs_execution_id ON data_pipeline_task_outputs (execution_id);
CREATE INDEX idx_outputs_file_type ON data_pipeline_task_outputs (file_type);
CREATE INDEX idx_outputs_primary ON data_pipeline_task_outputs (is_primary) WHERE is_primary = TRUE;


-- A repeated POST with the same Idempotency-Key returns the task it created the first time. The
-- foreign key is checked at commit, so key and task can be written in either order in one transaction.
CREATE TABLE data_pipeline_idempotency_keys (
    key                 varchar(255) PRIMARY KEY,
    request_hash        varchar(128) NOT NULL,
    task_id             varchar(40) NOT NULL
                        REFERENCES data_pipeline_tasks (id) ON DELETE CASCADE DEFERRABLE INITIALLY DEFERRED,
    created_at          timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX idx_idempotency_keys_task_id ON data_pipeline_idempotency_keys (task_id);


-- Retention: delete finished (completed/failed/cancelled) tasks whose last run ended more than
-- `days` days ago; their executions, logs, outputs and keys go with them. The set-returning form
-- tells the caller which task directories to remove.
CREATE FUNCTION delete_old_data_pipeline_tasks(days integer)
RETURNS TABLE (task_id varchar, output_directory text) LANGUAGE plpgsql AS $$
BEGIN
    IF days IS NULL OR days < 0 THEN
        RAISE EXCEPTION 'days must be 0 or more, got %', days USING ERRCODE = 'invalid_parameter_value';
    END IF;
    RETURN QUERY
        DELETE FROM data_pipeline_tasks AS t
         WHERE t.status IN ('completed', 'failed', 'cancelled')
           AND coalesce(t.completed_at, t.created_at) < now() - interval '1 day' * days
        RETURNING t.id, t.output_directory;
END
$$;

CREATE FUNCTION cleanup_old_data_pipeline_tasks(days integer) RETURNS integer LANGUAGE sql AS $$
    SELECT count(*)::integer FROM delete_old_data_pipeline_tasks(days);
$$;
