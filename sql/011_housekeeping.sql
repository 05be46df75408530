-- AgentQueue 011: housekeeping. Tool calls go with their job (prune, purge or a plain DELETE), the
-- worker role loses what it does not use, and the thread_activity dashboard finds recent threads
-- through an index (their usage is read through 005's usage_by_thread).

-- tool_calls has no foreign key to jobs (jobs are pruned in batches; a cascade per row would cost
-- more), so a statement trigger deletes the calls of the jobs a statement deleted.
create or replace function agentq.jobs_delete_tool_calls() returns trigger
language plpgsql as $$
begin
    delete from agentq.tool_calls tc using old_rows o where tc.job_id = o.id;
    return null;
end $$;

drop trigger if exists jobs_delete_tool_calls on agentq.jobs;
create trigger jobs_delete_tool_calls after delete on agentq.jobs
    referencing old table as old_rows for each statement execute function agentq.jobs_delete_tool_calls();

-- The worker prunes finished jobs, so it deletes their calls.
grant delete on agentq.tool_calls to agentq_worker;

-- The worker serves every user, so it acts for none: the producer API is not its (a SQL tool that
-- needs to write a user's data does so in its own function, which sees ctx.user_id). Nor does it
-- delete streams (they go with their thread).
revoke execute on function
    agentq.create_thread(text, text, text, jsonb), agentq.update_thread(uuid, text, text, text, jsonb),
    agentq.delete_thread(uuid), agentq.save_message(uuid, text, text, text, text, boolean),
    agentq.generate(uuid, text, text, uuid, jsonb), agentq.generate_object(uuid, text, jsonb, text, jsonb),
    agentq.submit_tool_outputs(bigint, jsonb), agentq.approve_tool_call(bigint, text, boolean, text)
  from agentq_worker;
revoke delete on agentq.streams from agentq_worker;

create index if not exists threads_by_update on agentq.threads (updated_at);

-- 007's `alter default privileges in schema agentq revoke execute ... from public` cannot take back
-- PostgreSQL's global default (per-schema defaults only add), so functions created after 007 were
-- executable by PUBLIC: the producer could call 008's step functions and 010's management through
-- it. Take it back for every function of the schema; every migration after this one ends with the
-- same statement (a test checks that no agentq function is PUBLIC's).
revoke execute on all functions in schema agentq from public;

insert into agentq.schema_migrations (version, name) values ('011', 'housekeeping') on conflict (version) do nothing;
