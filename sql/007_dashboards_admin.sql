-- AgentQueue 007: views for psql dashboards and admin functions for operators (README.md
-- "Dashboards").
--
-- Each view reads through an index sized to what it shows (active jobs, the last hour of finished
-- jobs, live workers; the indexes are in 001_schema.sql), so running them every second on a busy
-- database stays cheap; `sql/dashboards.psql` has ready `\watch` queries. The admin functions pause
-- and resume a queue (agentq.claim skips paused queues), requeue failed jobs, cancel everything of a
-- thread or a user, and purge finished data older than a date.

-- Dashboards --------------------------------------------------------------------------------------

-- Per queue and status: jobs now (active statuses) or finished in the last hour (ended statuses),
-- the oldest runnable job's wait, how many finished in the last minute and hour, and the queue's
-- failure rate over the last hour (failed / (succeeded + failed)).
create or replace view agentq.queue_stats as
with active as (
    select j.queue, j.status, count(*) as jobs,
           count(*) filter (where j.blocked) as blocked,
           extract(epoch from now() - min(j.run_at) filter (where j.status = 'queued' and not j.blocked and j.run_at <= now()))
             as oldest_waiting_s
      from agentq.jobs j where j.status in ('queued', 'running', 'requires_action') group by 1, 2),
recent as (
    select j.queue, j.status, count(*) as last_hour,
           count(*) filter (where j.finished_at > now() - interval '1 minute') as last_minute
      from agentq.jobs j where j.finished_at > now() - interval '1 hour' group by 1, 2),
rates as (
    select r.queue, round(sum(r.last_hour) filter (where r.status = 'failed')::numeric
                          / nullif(sum(r.last_hour) filter (where r.status in ('succeeded', 'failed')), 0), 4) as failure_rate
      from recent r group by 1)
select coalesce(a.queue, r.queue) as queue, coalesce(a.status, r.status) as status,
       coalesce(a.jobs, r.last_hour, 0) as jobs, coalesce(a.blocked, 0) as blocked,
       round(a.oldest_waiting_s::numeric, 3) as oldest_waiting_s,
       coalesce(r.last_minute, 0) as finished_last_minute, coalesce(r.last_hour, 0) as finished_last_hour,
       coalesce(rt.failure_rate, 0) as failure_rate_last_hour
  from active a
  full join recent r on r.queue = a.queue and r.status = a.status
  left join rates rt on rt.queue = coalesce(a.queue, r.queue);

-- Jobs in hand: who runs them, which attempt, how long their lease has left, how long they have run.
create or replace view agentq.active_jobs as
select j.id, j.queue, j.kind, j.status, j.worker, j.attempt, j.max_attempts,
       round(extract(epoch from j.lease_expires_at - now())::numeric, 1) as lease_left_s,
       j.thread_id, j.user_id, j.agent_name,
       coalesce(j.options->>'model', t.metadata #>> '{agent_options,model}', a.options->>'model', a.model) as model,
       j.started_at, round(extract(epoch from now() - j.started_at)::numeric, 1) as running_s,
       j.cancel_requested
  from agentq.jobs j
  left join agentq.threads t on t.id = j.thread_id
  left join agentq.agents a on a.name = j.agent_name
 where j.status in ('running', 'requires_action');

-- Failed jobs, newest first: the last error and the attempts used.
create or replace view agentq.failed_jobs as
select j.id, j.queue, j.kind, j.thread_id, j.user_id, j.agent_name, j.attempt, j.max_attempts, j.last_error,
       j.created_at, j.finished_at
  from agentq.jobs j where j.status = 'failed'
 order by j.finished_at desc;

-- Worker processes that registered: jobs in hand (counted from the jobs they hold), heartbeat age,
-- and whether they look alive: `lost_contact` once no heartbeat came for a whole lease (the worker
-- died, or cannot reach the database: its jobs are being taken back), `alive` while a heartbeat came
-- in the last minute. Dead rows are pruned after 10 minutes.
create or replace view agentq.workers as
select w.id, w.host, w.pid, w.queues, w.concurrency,
       (select count(*) from agentq.jobs j where j.status = 'running' and j.worker = w.id) as jobs_in_hand,
       w.waiting, w.started_at, w.heartbeat_at,
       round(extract(epoch from now() - w.heartbeat_at)::numeric, 1) as heartbeat_age_s,
       w.heartbeat_at > now() - interval '1 minute' as alive,
       w.heartbeat_at < now() - coalesce(w.lease, interval '30 seconds') as lost_contact
  from agentq.worker_registry w;

-- Tokens per day, user, agent, provider and model over the last 31 days (one row per LLM call is
-- summed; failed and cancelled calls included).
create or replace view agentq.usage_daily as
select date_trunc('day', u.at)::date as day, u.user_id, u.agent_name, u.provider, u.model,
       count(*) as calls, count(*) filter (where u.raw ? 'error') as failed_calls,
       sum(u.prompt_tokens) as prompt_tokens, sum(u.completion_tokens) as completion_tokens,
       sum(u.total_tokens) as total_tokens
  from agentq.usage u where u.at > now() - interval '31 days'
 group by 1, 2, 3, 4, 5;

-- Threads active in the last day, most recent first: messages, jobs waiting or running, tokens.
create or replace view agentq.thread_activity as
select t.id as thread_id, t.user_id, t.title, t.status, t.updated_at,
       (select count(*) from agentq.messages m where m.thread_id = t.id) as messages,
       (select count(*) from agentq.jobs j where j.thread_id = t.id and j.status in ('queued', 'running', 'requires_action'))
         as active_jobs,
       (select coalesce(sum(u.total_tokens), 0) from agentq.usage u where u.thread_id = t.id and u.at > now() - interval '1 day')
         as tokens_last_day
  from agentq.threads t where t.updated_at > now() - interval '1 day'
 order by t.updated_at desc;

-- Jobs finished in each 5-second slice of the last minute (slice 0 is the newest), for `agentq top`.
create or replace view agentq.throughput_last_minute as
select floor(extract(epoch from now() - j.finished_at) / 5)::int as slice, count(*) as jobs
  from agentq.jobs j where j.finished_at > now() - interval '60 seconds'
 group by 1;

-- Admin ------------------------------------------------------------------------------------------

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

insert into agentq.schema_migrations (version, name) values ('007', 'dashboards_admin') on conflict (version) do nothing;
