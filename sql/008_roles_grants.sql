-- AgentQueue 008: roles, row-level security and every grant (README.md "Roles and row-level
-- security"). It runs after the files that create the objects, so the statements on "all functions"
-- and "all sequences" see every one of them.
--
--   agentq_worker    what `agentq worker` needs: claim and finish jobs, write messages, streams,
--                    usage; sees every user's rows (it serves them all), changes no configuration.
--   agentq_producer  the application: create threads, save messages, generate, cancel, read results
--                    and streams, LISTEN. Sees and changes only the rows of the user its session
--                    names in the `agentq.user_id` setting (agentq.current_user_id()); with no user
--                    set, only rows without a user.
--   agentq_reader    operators: the dashboard views, read-only.
--
-- They are NOLOGIN group roles: grant them to login roles (`grant agentq_producer to app_login`).
-- Roles are cluster-wide, so every database migrated on a server shares them. The table owner (the
-- role that runs `agentq migrate`) and superusers bypass row-level security, as PostgreSQL does.
--
-- Function EXECUTE is not the guard: every function runs with its caller's rights (but the few
-- marked security definer), so table privileges and the policies below decide what a role may read
-- and change. EXECUTE is revoked from PUBLIC, granted on the whole schema to the worker and the
-- producer, and taken back where that gives a clearer error (a producer calling claim, a worker
-- calling purge) or where a function is an internal step of another (the finish_jobs steps). A new
-- table must enable row-level security or be listed as shared (RolesTests.everyTableHasADecision).

do $$
declare
    r text;
begin
    foreach r in array array['agentq_worker', 'agentq_producer', 'agentq_reader'] loop
        continue when exists (select 1 from pg_roles where rolname = r);
        begin
            execute format('create role %I nologin', r);
        exception
            when duplicate_object or unique_violation then null;   -- another database's migration made it first
            when insufficient_privilege then
                raise exception 'the role % does not exist and % may not create roles', r, current_user
                    using errcode = '42501',
                          hint = 'as a superuser or a role with CREATEROLE run: create role agentq_worker nologin; '
                                 'create role agentq_producer nologin; create role agentq_reader nologin; then migrate again';
        end;
    end loop;
end $$;

grant usage on schema agentq to agentq_worker, agentq_producer, agentq_reader;

-- Functions --------------------------------------------------------------------------------------

-- PostgreSQL lets PUBLIC execute every new function (a per-schema default privilege cannot take that
-- back), so this revoke covers the functions that exist now; a later file that creates functions
-- ends with the same statement (RolesTests checks that no agentq function is PUBLIC's). The
-- per-schema default below gives later functions to the worker and the producer.
revoke execute on all functions in schema agentq from public;
grant execute on all functions in schema agentq to agentq_worker, agentq_producer;
alter default privileges in schema agentq grant execute on functions to agentq_worker, agentq_producer;

-- What only workers (and the owner) call: the worker API, its internal steps, streams, tool steps,
-- embed jobs; and the owner's administration and embedding management.
revoke execute on function
    agentq.register_worker(text, text, int, text[], int, interval), agentq.deregister_worker(text),
    agentq.claim(text, text[], int, interval), agentq.heartbeat(text, bigint[], int[], interval),
    agentq.finish_jobs(text, jsonb), agentq.take_back_expired(int, interval), agentq.prune(int),
    agentq.finish_items(jsonb), agentq.finish_apply_outcomes(text, agentq.finish_item[]),
    agentq.finish_last_deltas(agentq.finish_item[], bigint[]),
    agentq.finish_streamed_replies(agentq.finish_item[], bigint[]),
    agentq.finish_abort_streams(agentq.finish_item[], bigint[]),
    agentq.finish_save_messages(agentq.finish_item[], bigint[], uuid[]),
    agentq.finish_save_usage(agentq.finish_item[]), agentq.finish_save_llm_calls(agentq.finish_item[], bigint[]),
    agentq.finish_job_events(bigint[]),
    agentq.open_streams(text, jsonb), agentq.write_deltas(text, jsonb),
    agentq.begin_step(text, bigint, int, jsonb), agentq.run_sql_tool(bigint, text),
    agentq.embed_inputs(bigint[]), agentq.enqueue_embed_jobs(uuid[], text, int, boolean),
    agentq.prompt_embedding(uuid, text), agentq.save_job_embeddings(text, bigint, int, jsonb),
    agentq.pause_queue(text, text), agentq.resume_queue(text), agentq.requeue_jobs(bigint[]),
    agentq.requeue_failed(bigint), agentq.requeue_failed_jobs(text, text, text, timestamptz, text),
    agentq.purge(timestamptz, boolean), agentq.reembed(text, uuid, text), agentq.delete_embeddings(text, uuid, text),
    agentq.ensure_vector_index(int), agentq.save_embeddings(jsonb), agentq.reindex_text_search()
  from agentq_producer;

-- Trigger functions are the owner's: a trigger runs its function whatever the role, and nobody
-- calls one directly.
revoke execute on function
    agentq.messages_embed_on_insert(), agentq.jobs_embed_prompt(), agentq.messages_embed_on_update(),
    agentq.jobs_before_insert(), agentq.jobs_before_update(), agentq.jobs_delete_tool_calls(),
    agentq.tool_calls_before_update(), agentq.threads_check_limits(), agentq.messages_user(),
    agentq.messages_tsv(), agentq.agents_check(), agentq.tools_check(), agentq.catalog_changed()
  from agentq_producer, agentq_worker;

-- The worker serves every user, so it acts for none: the producer API is not its (a SQL tool that
-- needs to write a user's data does so in its own function, which sees ctx.user_id). Nor are the
-- owner's administration and embedding management.
revoke execute on function
    agentq.create_thread(text, text, text, jsonb), agentq.update_thread(uuid, text, text, text, jsonb),
    agentq.delete_thread(uuid), agentq.save_message(uuid, text, text, text, text, boolean),
    agentq.generate(uuid, text, text, uuid, jsonb), agentq.generate_object(uuid, text, jsonb, text, jsonb),
    agentq.submit_tool_outputs(bigint, jsonb), agentq.approve_tool_call(bigint, text, boolean, text),
    agentq.set_search_hidden(uuid, boolean),
    agentq.pause_queue(text, text), agentq.resume_queue(text), agentq.requeue_jobs(bigint[]),
    agentq.requeue_failed(bigint), agentq.requeue_failed_jobs(text, text, text, timestamptz, text),
    agentq.purge(timestamptz, boolean), agentq.cancel_thread_jobs(uuid), agentq.cancel_user_jobs(text),
    agentq.reembed(text, uuid, text), agentq.delete_embeddings(text, uuid, text), agentq.reindex_text_search()
  from agentq_worker;

-- Tables -----------------------------------------------------------------------------------------

grant usage on all sequences in schema agentq to agentq_worker, agentq_producer;

-- Configuration: read by both; changed by the owner only. The producer reads the tool registry but
-- not its targets (webhook URLs may carry tokens), nor the providers (endpoints).
grant select on agentq.settings, agentq.agents to agentq_worker, agentq_producer;
grant select on agentq.tools, agentq.providers, agentq.queue_pauses, agentq.schema_migrations to agentq_worker;
grant select (name, description, parameters, kind, options, created_at) on agentq.tools to agentq_producer;

-- The producer's data.
grant select, insert, update, delete on agentq.threads to agentq_producer;
grant select, insert, update on agentq.messages, agentq.jobs to agentq_producer;
grant select on agentq.streams, agentq.stream_deltas, agentq.usage, agentq.embeddings to agentq_producer;
grant select, insert, update, delete on agentq.listeners to agentq_producer, agentq_reader;   -- agentq.listen()
grant select on agentq.worker_registry to agentq_producer;                      -- wake a waiting worker

-- The worker's. It deletes finished jobs and their tool calls (prune) but no streams: they go with
-- their thread.
grant select, update on agentq.threads to agentq_worker;
grant select, insert, update on agentq.messages, agentq.usage, agentq.streams to agentq_worker;
grant select, insert, update, delete on agentq.llm_calls to agentq_worker;   -- prune (llm_call_retention)
grant select, insert, update, delete on agentq.jobs, agentq.stream_deltas, agentq.embeddings, agentq.tool_calls,
      agentq.worker_registry, agentq.listeners to agentq_worker;

-- Events: the channel of every thread's events is the worker's and the reader's, never the
-- producer's (agentq.events_channel()); the reader may follow it with agentq.listen(null).
grant select on agentq.installation to agentq_worker, agentq_reader;
grant execute on function agentq.events_channel(), agentq.listen(uuid), agentq.unlisten(uuid) to agentq_reader;

-- Tool calls: the worker records them; the producer answers the calls of its parked jobs (the
-- trigger tool_calls_before_update lets it only approve a waiting call or give its result). Its
-- UPDATE on jobs is held likewise to the producer API's changes (jobs_before_update).
grant select, update on agentq.tool_calls to agentq_producer;

-- The dashboards (views run with their owner's rights, so the reader needs no table).
grant select on agentq.queue_stats, agentq.active_jobs, agentq.failed_jobs, agentq.workers, agentq.usage_daily,
      agentq.thread_activity, agentq.throughput_last_minute, agentq.embedding_stats, agentq.queue_pauses,
      agentq.schema_migrations
   to agentq_reader;

-- Row-level security -----------------------------------------------------------------------------

-- Row-level security on every table with a user's data; the worker serves every user.
do $$
declare
    t text;
begin
    foreach t in array array['threads', 'messages', 'jobs', 'streams', 'stream_deltas', 'usage', 'embeddings',
                             'llm_calls', 'tool_calls'] loop
        execute format('alter table agentq.%I enable row level security', t);
        execute format('drop policy if exists worker_all on agentq.%I', t);
        execute format('create policy worker_all on agentq.%I to agentq_worker using (true) with check (true)', t);
    end loop;
end $$;

-- A session sees and removes only its own registrations as a listener (the worker prunes dead ones;
-- agentq.has_listeners reads them all as the owner).
alter table agentq.listeners enable row level security;
drop policy if exists worker_all on agentq.listeners;
create policy worker_all on agentq.listeners to agentq_worker using (true) with check (true);
drop policy if exists own_session on agentq.listeners;
create policy own_session on agentq.listeners to agentq_producer, agentq_reader
    using (pid = pg_backend_pid()) with check (pid = pg_backend_pid());

-- A producer session owns the threads of its user; messages, streams, deltas, embeddings and tool
-- calls belong to their thread (the subqueries see only the session's threads and streams, through
-- their own policies); jobs and usage carry the user. llm_calls has no producer policy: the producer
-- has no grant on it.
drop policy if exists producer_own on agentq.threads;
create policy producer_own on agentq.threads to agentq_producer
    using (user_id is not distinct from agentq.current_user_id())
    with check (user_id is not distinct from agentq.current_user_id());
drop policy if exists producer_own on agentq.messages;
create policy producer_own on agentq.messages to agentq_producer
    using (exists (select 1 from agentq.threads t where t.id = thread_id))
    with check (exists (select 1 from agentq.threads t where t.id = thread_id));
drop policy if exists producer_own on agentq.streams;
create policy producer_own on agentq.streams to agentq_producer
    using (exists (select 1 from agentq.threads t where t.id = thread_id));
drop policy if exists producer_own on agentq.stream_deltas;
create policy producer_own on agentq.stream_deltas to agentq_producer
    using (exists (select 1 from agentq.streams s where s.id = stream_id));
drop policy if exists producer_own on agentq.embeddings;
create policy producer_own on agentq.embeddings to agentq_producer
    using (exists (select 1 from agentq.threads t where t.id = thread_id));
drop policy if exists producer_own on agentq.tool_calls;
create policy producer_own on agentq.tool_calls to agentq_producer
    using (exists (select 1 from agentq.threads t where t.id = thread_id));
drop policy if exists producer_own on agentq.jobs;
create policy producer_own on agentq.jobs to agentq_producer
    using (user_id is not distinct from agentq.current_user_id())
    with check (user_id is not distinct from agentq.current_user_id());
drop policy if exists producer_own on agentq.usage;
create policy producer_own on agentq.usage to agentq_producer
    using (user_id is not distinct from agentq.current_user_id());

insert into agentq.schema_migrations (version, name) values ('008', 'roles_grants') on conflict (version) do nothing;
