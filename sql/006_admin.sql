-- AgentQueue 006: admin functions for operators (issue 6): requeue failed jobs, pause and resume a
-- queue (the table agentq.queue_pauses is in 001; claim in 003 skips paused queues), cancel everything
-- of a thread or a user, purge finished data older than a date.

-- Pauses a queue; false when it was already paused.
create or replace function agentq.pause_queue(queue text, reason text default null) returns boolean
language plpgsql as $$
begin
    if queue is null then
        raise exception 'queue must not be null' using errcode = '22004';
    end if;
    insert into agentq.queue_pauses (queue, reason) values (pause_queue.queue, pause_queue.reason)
    on conflict on constraint queue_pauses_pkey do nothing;
    return found;
end $$;

-- Resumes a paused queue and wakes the workers; false when it was not paused.
create or replace function agentq.resume_queue(queue text) returns boolean
language plpgsql as $$
begin
    if queue is null then
        raise exception 'queue must not be null' using errcode = '22004';
    end if;
    delete from agentq.queue_pauses p where p.queue = resume_queue.queue;
    if not found then
        return false;
    end if;
    perform pg_notify('agentq_jobs', resume_queue.queue);
    return true;
end $$;

-- Puts failed jobs back in the queue with fresh attempts, each behind its thread's running job (if
-- any), at the back of the thread's line. Returns how many were requeued.
create or replace function agentq.requeue_jobs(p_job_ids bigint[]) returns int
language plpgsql as $$
declare
    n int := 0;
    j record;
begin
    -- Lock order: threads (by id), then jobs.
    perform 1 from agentq.threads t
     where t.id in (select jb.thread_id from agentq.jobs jb where jb.id = any (p_job_ids))
     order by t.id for no key update;
    for j in
        select jb.id, jb.thread_id, jb.queue, jb.concurrent, jb.kind from agentq.jobs jb
         where jb.id = any (p_job_ids) and jb.status = 'failed' order by jb.thread_id, jb.thread_seq, jb.id for update
    loop
        update agentq.jobs jb
           set status = 'queued', attempt = 0, run_at = now(), finished_at = null, worker = null,
               lease_expires_at = null, cancel_requested = false, result = null,
               thread_seq = nextval('agentq.thread_seq'),
               blocked = j.thread_id is not null and not j.concurrent and j.kind = 'generate'
                         and exists (select 1 from agentq.jobs h
                                      where h.thread_id = j.thread_id and h.id <> j.id
                                        and h.status in ('queued', 'running', 'requires_action')
                                        and not h.blocked and not h.concurrent and h.kind = 'generate')
         where jb.id = j.id;
        perform agentq.emit(jsonb_build_object('type', 'job.queued', 'thread_id', j.thread_id, 'job_id', j.id,
                                               'status', 'queued', 'text', 'requeued'));
        n := n + 1;
    end loop;
    if n > 0 then
        perform pg_notify('agentq_jobs', q) from (select distinct jb.queue as q from agentq.jobs jb where jb.id = any (p_job_ids)) qs;
    end if;
    return n;
end $$;

-- Requeues one failed job; raises for an unknown job (P0002) or one that did not fail (55000).
create or replace function agentq.requeue_failed(job_id bigint) returns boolean
language plpgsql as $$
declare
    st text;
begin
    if job_id is null then
        raise exception 'job_id must not be null' using errcode = '22004';
    end if;
    select jb.status into st from agentq.jobs jb where jb.id = requeue_failed.job_id;
    if st is null then
        raise exception 'unknown job %', job_id using errcode = 'P0002';
    elsif st <> 'failed' then
        raise exception 'job % is %, not failed: only failed jobs are requeued', job_id, st using errcode = '55000';
    end if;
    return agentq.requeue_jobs(array[job_id]) = 1;
end $$;

-- Requeues every failed job matching all the filters given (null: any), finished after `since`.
-- Returns how many were requeued.
create or replace function agentq.requeue_failed_jobs(queue text default null, agent text default null,
                                                      user_id text default null, since timestamptz default null,
                                                      error_like text default null) returns int
language sql as $$
    select agentq.requeue_jobs(array(
        select jb.id from agentq.jobs jb
         where jb.status = 'failed'
           and (requeue_failed_jobs.queue is null or jb.queue = requeue_failed_jobs.queue)
           and (requeue_failed_jobs.agent is null or jb.agent_name = requeue_failed_jobs.agent)
           and (requeue_failed_jobs.user_id is null or jb.user_id = requeue_failed_jobs.user_id)
           and (requeue_failed_jobs.since is null or jb.finished_at >= requeue_failed_jobs.since)
           and (requeue_failed_jobs.error_like is null or jb.last_error like requeue_failed_jobs.error_like)))
$$;

-- Cancels every unfinished job of a thread (queued ones at once, running ones are asked to stop).
-- Returns how many were cancelled or asked to stop.
create or replace function agentq.cancel_thread_jobs(thread_id uuid) returns int
language plpgsql as $$
declare
    n int := 0;
    id bigint;
begin
    if thread_id is null then
        raise exception 'thread_id must not be null' using errcode = '22004';
    end if;
    if not exists (select 1 from agentq.threads t where t.id = cancel_thread_jobs.thread_id) then
        raise exception 'unknown thread %', thread_id using errcode = 'P0002';
    end if;
    -- Blocked jobs first, so cancelling the head does not unblock a job that is cancelled next.
    for id in select jb.id from agentq.jobs jb
               where jb.thread_id = cancel_thread_jobs.thread_id and jb.status in ('queued', 'running', 'requires_action')
                 and not jb.cancel_requested
               order by jb.blocked desc, jb.thread_seq desc loop
        perform agentq.cancel(id);
        n := n + 1;
    end loop;
    return n;
end $$;

-- Cancels every unfinished job of a user's threads (and the user's thread-less jobs).
create or replace function agentq.cancel_user_jobs(user_id text) returns int
language plpgsql as $$
declare
    n int := 0;
    t uuid;
    id bigint;
begin
    if user_id is null then
        raise exception 'user_id must not be null' using errcode = '22004';
    end if;
    for t in select distinct jb.thread_id from agentq.jobs jb
              where jb.user_id = cancel_user_jobs.user_id and jb.thread_id is not null
                and jb.status in ('queued', 'running', 'requires_action') order by 1 loop
        n := n + agentq.cancel_thread_jobs(t);
    end loop;
    for id in select jb.id from agentq.jobs jb
               where jb.user_id = cancel_user_jobs.user_id and jb.thread_id is null
                 and jb.status in ('queued', 'running', 'requires_action') and not jb.cancel_requested order by 1 loop
        perform agentq.cancel(id);
        n := n + 1;
    end loop;
    return n;
end $$;

-- Deletes finished data older than `older_than`: finished jobs, ended streams with their deltas, raw
-- LLM calls, and (only when asked) usage rows. Threads and messages are kept. Returns the counts.
create or replace function agentq.purge(older_than timestamptz, include_usage boolean default false) returns jsonb
language plpgsql as $$
declare
    jobs_n int;
    streams_n int;
    calls_n int;
    usage_n int := 0;
begin
    if older_than is null then
        raise exception 'older_than must not be null' using errcode = '22004';
    end if;
    if older_than > now() then
        raise exception 'older_than must be in the past, got %', older_than using errcode = '22023';
    end if;
    delete from agentq.jobs where finished_at < older_than;
    get diagnostics jobs_n = row_count;
    delete from agentq.streams where status <> 'streaming' and updated_at < older_than;
    get diagnostics streams_n = row_count;
    delete from agentq.llm_calls where at < older_than;
    get diagnostics calls_n = row_count;
    if include_usage then
        delete from agentq.usage where at < older_than;
        get diagnostics usage_n = row_count;
    end if;
    return jsonb_build_object('jobs', jobs_n, 'streams', streams_n, 'llm_calls', calls_n, 'usage', usage_n);
end $$;

insert into agentq.schema_migrations (version, name) values ('006', 'admin') on conflict (version) do nothing;
