-- AgentQueue 001: the schema. Every table, its constraints and the indexes the queries use (the
-- functions of later files and the dashboards read through them). sql/README.md describes the files.
-- Applies with `agentq migrate` or `psql -v ON_ERROR_STOP=1 -f sql/001_schema.sql`; safe to apply twice.

create extension if not exists vector;
create schema if not exists agentq;

-- Applied migrations. Each file records itself at its end, so psql -f keeps this table right too.
create table if not exists agentq.schema_migrations (
    version    text primary key,
    name       text not null,
    checksum   text,          -- of the file as `agentq migrate` applied it (null when applied with psql -f)
    applied_at timestamptz not null default now()
);

-- Settings read by the SQL API and the workers: `update agentq.settings set value = ... where key = ...`.
create table if not exists agentq.settings (
    key         text primary key,
    value       jsonb not null,
    description text not null
);
insert into agentq.settings (key, value, description) values
    ('max_prompt_chars', '100000', 'Longest prompt generate() accepts, in characters.'),
    ('max_message_chars', '1000000', 'Longest message text save_message() accepts, in characters.'),
    ('job_retention', '"7 days"', 'Finished jobs older than this are pruned by the workers.'),
    ('delta_retention', '"1 day"', 'Deltas of ended streams older than this are pruned by the workers.'),
    ('text_search_config', '"english"',
     'Text search configuration of message tsvectors and queries (english stems English words; simple suits any language). Changing it needs agentq.reindex_text_search().'),
    ('embed_batch_size', '128', 'Messages per embed job, which the worker sends in one embeddings request.'),
    ('embed_max_chars', '10000', 'Characters of a message that are embedded (the first N).'),
    ('embed_queue', '"default"', 'Queue of embed jobs (a queue of their own, served by workers of their own, keeps a slow embedding endpoint from holding generation slots).'),
    ('llm_call_retention', '"7 days"', 'Rows of agentq.llm_calls (raw request and response bodies) older than this are pruned by the workers.'),
    -- Limits on what a producer asks for (every role but the owner and agentq_worker: agentq.limited_session()).
    ('priority_min', '-100', 'Lowest job priority a producer may set (lower runs first; the owner may set any).'),
    ('priority_max', '100', 'Highest job priority a producer may set.'),
    ('max_attempts_limit', '20', 'Highest max_attempts a producer may set on a job.'),
    ('quarantine_after', '2', 'Lost leases after which a job is failed as quarantined instead of handed to the next worker: its worker died or hung while running it that many times (leases lost to a server restart do not count).'),
    ('allow_log_raw', 'false', 'Whether a producer may set log_raw (raw request and response bodies in agentq.llm_calls) on a job or in a thread''s agent_options; agents'' options, set by the owner, always may.')
on conflict (key) do nothing;

-- Model providers beyond the built-in `openai` and `mock`. api_key_env names an environment variable: never a key.
create table if not exists agentq.providers (
    name        text primary key check (name ~ '^[a-z][a-z0-9_-]{0,62}$'),
    kind        text not null check (kind in ('openai', 'mock')),
    base_url    text check (base_url is null or base_url ~ '^https?://'),
    api_key_env text check (api_key_env is null or api_key_env ~ '^[A-Za-z_][A-Za-z0-9_]*$'),
    options     jsonb not null default '{}' check (jsonb_typeof(options) = 'object'),
    created_at  timestamptz not null default now()
);

create table if not exists agentq.agents (
    name            text primary key check (name ~ '^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$'),
    model           text not null check (model ~ '^[a-z][a-z0-9_-]*:.+$'),
    instructions    text,
    tools           text[] not null default '{}',
    embedding_model text check (embedding_model is null or embedding_model ~ '^[a-z][a-z0-9_-]*:.+$'),
    options         jsonb not null default '{}' check (jsonb_typeof(options) = 'object'),
    created_at      timestamptz not null default now(),
    updated_at      timestamptz not null default now()
);
insert into agentq.agents (name, model, instructions)
values ('default', 'mock:scripted', 'You are a helpful assistant.')
on conflict (name) do nothing;

create table if not exists agentq.threads (
    id         uuid primary key default gen_random_uuid(),
    user_id    text,
    title      text,
    summary    text,
    status     text not null default 'active' check (status in ('active', 'archived')),
    metadata   jsonb not null default '{}' check (jsonb_typeof(metadata) = 'object'),
    last_ord   int not null default -1,   -- highest ord allocated; bumping it also locks the thread
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now(),
    -- The NOTIFY channel of the thread's events: random, set when the thread is created and never
    -- changed (trigger threads_channel), so it is a capability only those who can read the row hold.
    channel    text not null default 'agentq_t_' || replace(gen_random_uuid()::text, '-', '')
);
create index if not exists threads_by_user on agentq.threads (user_id, updated_at desc, id);
-- Recently active threads (the thread_activity dashboard).
create index if not exists threads_by_update on agentq.threads (updated_at);

create table if not exists agentq.messages (
    id            uuid primary key default gen_random_uuid(),
    thread_id     uuid not null references agentq.threads (id) on delete cascade,
    user_id       text,
    agent_name    text,
    ord           int not null check (ord >= 0),
    step          int not null check (step >= 0),
    role          text not null check (role in ('system', 'user', 'assistant', 'tool')),
    content       jsonb not null default '[]' check (jsonb_typeof(content) = 'array'),
    text          text,
    status        text not null default 'success' check (status in ('pending', 'success', 'failed')),
    error         text,
    model         text,
    provider      text,
    usage         jsonb,
    finish_reason text,
    tool          boolean not null default false,
    job_id        bigint,               -- the job that produced it; no foreign key: jobs are pruned, messages stay
    embed         boolean not null default true,
    created_at    timestamptz not null default now(),
    updated_at    timestamptz not null default now(),
    tsv           tsvector,             -- kept by the messages_tsv trigger (006_memory.sql); null for tool messages
    search_hidden boolean not null default false,   -- hidden from user-wide (cross-thread) search, found in its thread
    unique (thread_id, ord, step),
    check (status <> 'failed' or error is not null)
);
create index if not exists messages_by_job on agentq.messages (job_id) where job_id is not null;
-- Text search (agentq.search_messages).
create index if not exists messages_tsv on agentq.messages using gin (tsv) where status = 'success' and not tool;

create table if not exists agentq.jobs (
    id                bigint generated by default as identity primary key,
    kind              text not null default 'generate' check (kind in ('generate', 'embed')),
    queue             text not null default 'default' check (queue ~ '^[A-Za-z0-9_.-]{1,64}$'),
    status            text not null default 'queued'
                      check (status in ('queued', 'running', 'requires_action', 'succeeded', 'failed', 'cancelled')),
    blocked           boolean not null default false,   -- waits behind an older job of its thread
    thread_seq        bigint,                           -- order within its thread, taken under the thread lock
    concurrent        boolean not null default false,   -- exempt from one-generation-per-thread
    priority          int not null default 0,           -- lower runs first
    run_at            timestamptz not null default now(),
    attempt           int not null default 0 check (attempt >= 0),
    lost_leases       int not null default 0,           -- leases taken back while the server was up (quarantine_after)
    max_attempts      int not null default 5 check (max_attempts between 1 and 100),
    thread_id         uuid references agentq.threads (id) on delete set null,
    user_id           text,
    agent_name        text references agentq.agents (name) on update cascade on delete set null,
    prompt_message_id uuid references agentq.messages (id) on delete set null,
    options           jsonb not null default '{}' check (jsonb_typeof(options) = 'object'),
    result            jsonb,
    last_error        text,
    worker            text,
    lease_expires_at  timestamptz,
    cancel_requested  boolean not null default false,
    idempotency_key   text,                             -- unique per user (jobs_idempotency)
    created_at        timestamptz not null default now(),
    started_at        timestamptz,
    finished_at       timestamptz,
    message_ids       uuid[],                           -- an embed job's messages, in order (the model is options.model)
    check (status <> 'running' or (worker is not null and lease_expires_at is not null)),
    check ((status in ('succeeded', 'failed', 'cancelled')) = (finished_at is not null)),
    check (not (blocked and concurrent))
) with (fillfactor = 80, autovacuum_vacuum_scale_factor = 0.01, autovacuum_vacuum_threshold = 1000,
        autovacuum_vacuum_cost_delay = 0);
-- Idempotency keys are scoped by user: one user's key never finds or collides with another's job
-- (jobs without a user share one scope; two indexes, as NULLS NOT DISTINCT needs PostgreSQL 15).
create unique index if not exists jobs_idempotency on agentq.jobs (user_id, idempotency_key)
    where idempotency_key is not null and user_id is not null;
create unique index if not exists jobs_idempotency_no_user on agentq.jobs (idempotency_key)
    where idempotency_key is not null and user_id is null;
-- The claim: `status = 'queued' and not blocked and queue = $1 and run_at <= now() order by priority, run_at, id`.
create index if not exists jobs_claim on agentq.jobs (queue, priority, run_at, id) where status = 'queued' and not blocked;
-- Take-back of expired leases and heartbeats.
create index if not exists jobs_leases on agentq.jobs (lease_expires_at) where status = 'running';
-- The next job of a thread, unblocked when the head ends (in the order the thread lock was taken).
create sequence if not exists agentq.thread_seq;
create index if not exists jobs_waiting on agentq.jobs (thread_id, thread_seq) where blocked;
-- Thread deletes (foreign key) and per-thread cancels.
create index if not exists jobs_by_thread on agentq.jobs (thread_id);
-- Pruning of finished jobs.
create index if not exists jobs_finished on agentq.jobs (finished_at) where finished_at is not null;
-- Backstop of one generation at a time per thread: at most one unblocked active job per thread.
create unique index if not exists jobs_one_head_per_thread on agentq.jobs (thread_id)
    where status in ('queued', 'running', 'requires_action') and not blocked and not concurrent and kind = 'generate';
-- The dashboards: active jobs per queue and status, recent failures.
create index if not exists jobs_active on agentq.jobs (queue, status) where status in ('queued', 'running', 'requires_action');
create index if not exists jobs_failed on agentq.jobs (finished_at) where status = 'failed';
-- Queued embed jobs holding given messages (a re-embed or an edit skips what already waits).
create index if not exists jobs_embed_waiting on agentq.jobs using gin (message_ids) where kind = 'embed' and status = 'queued';

create table if not exists agentq.streams (
    id           uuid primary key default gen_random_uuid(),
    thread_id    uuid not null references agentq.threads (id) on delete cascade,
    user_id      text,
    job_id       bigint,
    message_id   uuid references agentq.messages (id) on delete cascade,
    status       text not null default 'streaming' check (status in ('streaming', 'finished', 'aborted')),
    last_seq     int not null default -1,
    abort_reason text,
    created_at   timestamptz not null default now(),
    updated_at   timestamptz not null default now()
);
create index if not exists streams_by_thread on agentq.streams (thread_id, created_at);
create index if not exists streams_by_job on agentq.streams (job_id) where status = 'streaming';
create index if not exists streams_ended on agentq.streams (updated_at) where status <> 'streaming';

create table if not exists agentq.stream_deltas (
    stream_id  uuid not null references agentq.streams (id) on delete cascade,
    seq        int not null check (seq >= 0),
    text       text not null default '',
    parts      jsonb,
    created_at timestamptz not null default now(),
    primary key (stream_id, seq)
);

create table if not exists agentq.tools (
    name        text primary key check (name ~ '^[A-Za-z0-9_-]{1,64}$'),
    description text not null default '',
    parameters  jsonb not null default '{"type": "object", "properties": {}}' check (jsonb_typeof(parameters) = 'object'),
    kind        text not null check (kind in ('sql', 'http', 'client')),
    target      text,
    options     jsonb not null default '{}' check (jsonb_typeof(options) = 'object'),
    created_at  timestamptz not null default now(),
    check ((kind = 'client') = (target is null))
);

-- One row per tool call of a generation, keyed by (job_id, tool_call_id): the key that makes a SQL
-- tool call run once, and the state of calls waiting for a client output or an approval.
create table if not exists agentq.tool_calls (
    job_id           bigint not null,
    tool_call_id     text not null,
    thread_id        uuid not null references agentq.threads (id) on delete cascade,
    user_id          text,
    tool_name        text not null,
    kind             text not null check (kind in ('sql', 'http', 'client', 'swift', 'invalid')),
    args             jsonb not null default '{}',
    status           text not null check (status in ('running', 'awaiting_client', 'awaiting_approval', 'approved', 'done')),
    result           jsonb,
    is_error         boolean not null default false,
    call_message_id  uuid,
    result_message_id uuid,
    created_at       timestamptz not null default now(),
    finished_at      timestamptz,
    primary key (job_id, tool_call_id)   -- no foreign key to jobs: the jobs_delete_tool_calls trigger (005_tools.sql)
);
create index if not exists tool_calls_open on agentq.tool_calls (job_id) where status <> 'done';

-- One row per LLM call, including calls that failed or were cancelled. No foreign keys: usage outlives threads.
create table if not exists agentq.usage (
    id                bigint generated by default as identity primary key,
    at                timestamptz not null default now(),
    user_id           text,
    thread_id         uuid,
    agent_name        text,
    job_id            bigint,
    message_id        uuid,
    kind              text not null default 'chat' check (kind in ('chat', 'embedding')),
    provider          text not null,
    model             text not null,
    prompt_tokens     int not null default 0 check (prompt_tokens >= 0),
    completion_tokens int not null default 0 check (completion_tokens >= 0),
    total_tokens      int not null default 0 check (total_tokens >= 0),
    raw               jsonb
);
create index if not exists usage_by_time on agentq.usage (at);
create index if not exists usage_by_user on agentq.usage (user_id, at);
create index if not exists usage_by_job on agentq.usage (job_id);
create index if not exists usage_by_thread on agentq.usage (thread_id, at);

-- Raw request and response bodies, when an agent sets options.log_raw. Credentials are never stored.
create table if not exists agentq.llm_calls (
    id          bigint generated by default as identity primary key,
    at          timestamptz not null default now(),
    job_id      bigint,
    thread_id   uuid,
    user_id     text,
    provider    text not null,
    model       text not null,
    url         text,
    request     jsonb,
    response    jsonb,
    http_status int,
    error       text,
    duration_ms int
);
create index if not exists llm_calls_by_job on agentq.llm_calls (job_id);
-- Pruning (llm_call_retention).
create index if not exists llm_calls_by_time on agentq.llm_calls (at);

-- Message vectors, isolated by model and dimension (every search filters on both).
create table if not exists agentq.embeddings (
    message_id uuid not null references agentq.messages (id) on delete cascade,
    model      text not null,
    dims       int not null check (dims between 1 and 16000),
    thread_id  uuid not null references agentq.threads (id) on delete cascade,
    user_id    text,   -- the message's user, for user-wide search (messages.search_hidden opts out)
    embedding  vector not null,
    created_at timestamptz not null default now(),
    primary key (message_id, model),
    check (vector_dims(embedding) = dims)
);
create index if not exists embeddings_by_thread on agentq.embeddings (thread_id, model, dims);
-- Keyset pages of one model's vectors (list_embeddings) and deletes by model.
create index if not exists embeddings_by_model on agentq.embeddings (model, message_id);
-- Deletes by user, and user-wide vector search.
create index if not exists embeddings_by_user on agentq.embeddings (user_id, model) where user_id is not null;
-- The HNSW (cosine) index of each dimension in use is created when that dimension is first saved
-- (agentq.ensure_vector_index, 006_memory.sql).

-- Live worker processes (unlogged: only meaningful while the server runs). `waiting` = has free slots and
-- found the queue empty, so an enqueue must NOTIFY agentq_jobs to wake it.
create unlogged table if not exists agentq.worker_registry (
    id           text primary key,
    host         text not null,
    pid          int not null,
    queues       text[] not null,
    concurrency  int not null,
    in_hand      int not null default 0,
    waiting      boolean not null default false,
    started_at   timestamptz not null default now(),
    heartbeat_at timestamptz not null default now(),
    lease        interval                  -- its lease: a worker silent for longer lost contact
);

-- This installation's secrets, one row: the channel of every thread's events, random, readable by the
-- owner, the worker and the reader only (README "Roles and row-level security": channel names are
-- capabilities, as PostgreSQL does not check LISTEN).
create table if not exists agentq.installation (
    id             boolean primary key default true check (id),
    events_channel text not null default 'agentq_all_' || replace(gen_random_uuid()::text, '-', '')
);
insert into agentq.installation default values on conflict (id) do nothing;

-- Sessions that called agentq.listen(): enqueue-time events are sent only when one of them listens
-- (a NOTIFY serialises commits, so producers do not pay for it when nobody is listening).
create unlogged table if not exists agentq.listeners (
    channel       text not null,
    pid           int not null,
    backend_start timestamptz not null,
    primary key (channel, pid)
);

-- Paused queues: workers claim nothing from them until they are resumed (running jobs go on).
create table if not exists agentq.queue_pauses (
    queue     text primary key,
    paused_at timestamptz not null default now(),
    reason    text
);

insert into agentq.schema_migrations (version, name) values ('001', 'schema') on conflict (version) do nothing;
