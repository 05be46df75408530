-- AgentQueue 005: views for psql dashboards (SPEC section 9). Each reads through an index sized to
-- what it shows (active jobs, the last hour of finished jobs, live workers), so running them every
-- second on a busy database stays cheap; `sql/dashboards.psql` has ready `\watch` queries.

create index if not exists jobs_active on agentq.jobs (queue, status) where status in ('queued', 'running', 'requires_action');
create index if not exists jobs_failed on agentq.jobs (finished_at) where status = 'failed';
create index if not exists usage_by_thread on agentq.usage (thread_id, at);

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
       j.thread_id, j.user_id, j.agent_name, coalesce(j.options->>'model', a.model) as model,
       j.started_at, round(extract(epoch from now() - j.started_at)::numeric, 1) as running_s,
       j.cancel_requested
  from agentq.jobs j left join agentq.agents a on a.name = j.agent_name
 where j.status in ('running', 'requires_action');

-- Failed jobs, newest first: the last error and the attempts used.
create or replace view agentq.failed_jobs as
select j.id, j.queue, j.kind, j.thread_id, j.user_id, j.agent_name, j.attempt, j.max_attempts, j.last_error,
       j.created_at, j.finished_at
  from agentq.jobs j where j.status = 'failed'
 order by j.finished_at desc;

-- Worker processes that registered: jobs in hand (counted from the jobs they hold), heartbeat age,
-- and whether they look alive (a heartbeat in the last minute; dead rows are pruned after 10).
create or replace view agentq.workers as
select w.id, w.host, w.pid, w.queues, w.concurrency,
       (select count(*) from agentq.jobs j where j.status = 'running' and j.worker = w.id) as jobs_in_hand,
       w.waiting, w.started_at, w.heartbeat_at,
       round(extract(epoch from now() - w.heartbeat_at)::numeric, 1) as heartbeat_age_s,
       w.heartbeat_at > now() - interval '1 minute' as alive
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

insert into agentq.schema_migrations (version, name) values ('005', 'dashboards') on conflict (version) do nothing;
