-- AgentQueue 003: the functions workers call (README.md "How the queue works"). Producers do not
-- need them; they are SQL so each worker step is one round trip and can be read (and tried) from psql.
--
-- Lock order everywhere: thread rows (by id), then job rows. Fencing: every write a worker makes is
-- conditional on `status = 'running' and worker = $worker and attempt = $attempt`, so a worker that
-- lost its lease (the job was taken back and maybe claimed again) matches no row and changes nothing.

-- A worker process announces itself (and again after a reconnect).
create or replace function agentq.register_worker(
    p_id text, p_host text, p_pid int, p_queues text[], p_concurrency int, p_lease interval default null)
returns void language sql as $$
    insert into agentq.worker_registry (id, host, pid, queues, concurrency, lease)
    values (p_id, p_host, p_pid, p_queues, p_concurrency, p_lease)
    on conflict (id) do update set host = excluded.host, pid = excluded.pid, queues = excluded.queues,
        concurrency = excluded.concurrency, lease = excluded.lease, heartbeat_at = now(), waiting = false
$$;

create or replace function agentq.deregister_worker(p_id text) returns void
language sql as $$ delete from agentq.worker_registry where id = p_id $$;

-- Ends the live streams of jobs whose attempt did not succeed: each pending message fails with its
-- error and keeps the text its deltas hold; each stream aborts with its reason. Returns the events
-- (message.updated, stream.aborted) for the caller to send in its transaction.
create or replace function agentq.end_streams(p_job_ids bigint[], p_reasons text[], p_errors text[])
returns jsonb[] language plpgsql as $$
declare
    events jsonb[];
    more jsonb[];
begin
    with e as (
        select * from unnest(p_job_ids, p_reasons, p_errors) as x(job_id, reason, error)),
    partial as (
        select m.id, e.job_id, e.error,
               (select string_agg(sd.text, '' order by sd.seq)
                  from agentq.streams s join agentq.stream_deltas sd on sd.stream_id = s.id
                 where s.message_id = m.id) as text
          from e join agentq.messages m on m.job_id = e.job_id and m.status = 'pending'),
    failed as (
        update agentq.messages m
           set status = 'failed', error = p.error, updated_at = now(),
               text = case when coalesce(m.text, '') = '' then coalesce(p.text, '') else m.text end,
               content = case when coalesce(m.text, '') = '' and coalesce(p.text, '') <> ''
                              then jsonb_build_array(jsonb_build_object('type', 'text', 'text', p.text))
                              else m.content end
          from partial p
         where m.id = p.id
        returning m.id, m.thread_id, m.job_id)
    select coalesce(array_agg(jsonb_build_object('type', 'message.updated', 'thread_id', f.thread_id, 'message_id', f.id,
                                                 'job_id', f.job_id, 'status', 'failed') order by f.job_id), '{}')
      into events from failed f;
    with e as (
        select * from unnest(p_job_ids, p_reasons) as x(job_id, reason)),
    aborted as (
        update agentq.streams s set status = 'aborted', abort_reason = e.reason, updated_at = now()
          from e where s.job_id = e.job_id and s.status = 'streaming'
        returning s.id, s.thread_id, s.job_id, s.message_id, e.reason)
    select coalesce(array_agg(jsonb_build_object('type', 'stream.aborted', 'thread_id', a.thread_id, 'job_id', a.job_id,
                                                 'message_id', a.message_id, 'stream_id', a.id, 'status', 'aborted',
                                                 'text', a.reason) order by a.job_id), '{}')
      into more from aborted a;
    return events || more;
end $$;

-- Takes back jobs whose lease expired (their worker died or stalled): requeued with the attempt
-- counted, failed when attempts are used up, cancelled when a cancel was requested. Their pending
-- messages fail keeping the text their deltas hold, and their streams abort. Threads locked by
-- others are skipped until the next call.
-- Quarantine: a lease lost while the server was up (the last heartbeat, lease_expires_at - p_lease,
-- came after the server started) counts against the job; at the setting quarantine_after the job
-- fails as quarantined instead of taking down the next worker too. Leases lost to a restart do not
-- count. p_lease is the caller's lease, taken as the holder's.
create or replace function agentq.take_back_expired(p_limit int default 100, p_lease interval default '30 seconds')
returns int language plpgsql as $$
declare
    thread_ids uuid[];
    ended_threads uuid[];
    n int := 0;
    j record;
    quarantine int := greatest(coalesce((agentq.setting('quarantine_after') #>> '{}')::int, 2), 1);
    server_started timestamptz := pg_postmaster_start_time();
begin
    select array_agg(distinct c.thread_id) into thread_ids
      from (select jb.thread_id from agentq.jobs jb
             where jb.status = 'running' and jb.lease_expires_at < now()
             order by jb.lease_expires_at limit p_limit) c;
    if not found or thread_ids is null and not exists (
        select 1 from agentq.jobs where status = 'running' and lease_expires_at < now() and thread_id is null) then
        return 0;
    end if;
    -- Lock the threads we can; a thread locked by a completing worker is left for the next pass.
    select array_agg(t.id) into thread_ids
      from (select id from agentq.threads where id = any (thread_ids) order by id for no key update skip locked) t;
    ended_threads := '{}';
    for j in
        with c as (   -- fenced in a CTE, as the claim is, so the limit holds
            select id from agentq.jobs
             where status = 'running' and lease_expires_at < now()
               and (thread_id is null or thread_id = any (coalesce(thread_ids, '{}')))
             order by lease_expires_at limit p_limit
             for update skip locked)
        , lost as (
            select jb.id, jb.lost_leases + (jb.lease_expires_at - p_lease > server_started)::int as lost_leases
              from agentq.jobs jb join c on c.id = jb.id)
        update agentq.jobs jb
           set status = case when jb.cancel_requested then 'cancelled'
                             when jb.attempt >= jb.max_attempts or l.lost_leases >= quarantine then 'failed' else 'queued' end,
               last_error = case when jb.cancel_requested then 'cancelled'
                                 when l.lost_leases >= quarantine and jb.attempt < jb.max_attempts then
                                     format('quarantined: %s workers stopped heartbeating while running it (a crash or a hang; last %s)',
                                            l.lost_leases, jb.worker)
                                 else 'lease expired: worker ' || jb.worker || ' stopped heartbeating' end,
               finished_at = case when jb.cancel_requested or jb.attempt >= jb.max_attempts or l.lost_leases >= quarantine
                                  then now() end,
               lost_leases = l.lost_leases,
               blocked = false, worker = null, lease_expires_at = null, run_at = now()
          from lost l
         where jb.id = l.id and jb.status = 'running' and jb.lease_expires_at < now()
        returning jb.id, jb.thread_id, jb.status
    loop
        n := n + 1;
        perform agentq.emit_all(agentq.end_streams(array[j.id], array['timeout'], array['lease expired']));
        if j.status <> 'queued' and j.thread_id is not null then
            ended_threads := ended_threads || j.thread_id;
        end if;
        perform agentq.emit(jsonb_build_object('type', 'job.' || j.status, 'thread_id', j.thread_id, 'job_id', j.id,
                                               'status', j.status, 'text', 'lease expired'));
    end loop;
    if cardinality(ended_threads) > 0 then
        perform agentq.touch_threads(ended_threads);
        perform agentq.unblock_next(ended_threads);
    end if;
    return n;
end $$;

-- Claims up to p_limit runnable jobs for a worker, walking its queues in the order given, after taking
-- back expired leases. Each queue's claim is the CTE-fenced SKIP LOCKED statement on the jobs_claim
-- index; paused queues (agentq.pause_queue) are skipped. Marks the worker `waiting` when it got fewer
-- jobs than it asked for (producers then NOTIFY it). The claim statement itself is planned on every
-- call (EXECUTE), with the queue and the limit it is for; the function's other statements keep
-- their plans (half a millisecond less per claim than planning them all every time).
create or replace function agentq.claim(p_worker text, p_queues text[], p_limit int, p_lease interval)
returns setof agentq.jobs language plpgsql
set plan_cache_mode = force_generic_plan as $$
declare
    q text;
    batch agentq.jobs[];
    claimed agentq.jobs[] := '{}';
begin
    if exists (select 1 from agentq.jobs where status = 'running' and lease_expires_at < now()) then
        perform agentq.take_back_expired(100, p_lease);
    end if;
    foreach q in array p_queues loop
        exit when cardinality(claimed) >= p_limit;
        continue when exists (select 1 from agentq.queue_pauses p where p.queue = q);
        execute $q$
        with c as (
            select id from agentq.jobs
             where status = 'queued' and not blocked and queue = $1 and run_at <= now()
             order by priority, run_at, id
             limit $2
             for update skip locked),
        u as (
            update agentq.jobs jb
               set status = 'running', attempt = jb.attempt + 1, worker = $3,
                   started_at = now(), lease_expires_at = now() + $4
              from c where jb.id = c.id
            returning jb.*)
        select coalesce(array_agg(u order by u.priority, u.run_at, u.id), '{}') from u$q$
        into batch using q, p_limit - cardinality(claimed), p_worker, p_lease;
        claimed := claimed || batch;
    end loop;
    perform agentq.emit_all(array(
        select jsonb_build_object('type', 'job.running', 'thread_id', j.thread_id, 'job_id', j.id, 'status', 'running')
          from unnest(claimed) j));
    update agentq.worker_registry set waiting = (cardinality(claimed) < p_limit), heartbeat_at = now()
     where id = p_worker and waiting is distinct from (cardinality(claimed) < p_limit);
    return query select * from unnest(claimed);
end $$;

-- Extends the leases of the jobs a worker holds, each fenced by its attempt. Returns the ones it
-- still holds (a job missing from the answer was taken back: the worker must drop it) and whether a
-- cancel was requested. A row another transaction has locked (a producer's cancel, say) is skipped,
-- not waited for, and still counts as held. Lock order as in claim: job rows, then the registry row.
create or replace function agentq.heartbeat(p_worker text, p_job_ids bigint[], p_attempts int[], p_lease interval)
returns table (job_id bigint, cancel_requested boolean) language plpgsql
set plan_cache_mode = force_generic_plan as $$
#variable_conflict use_column
begin
    return query
        with held as (select h.id, h.attempt from unnest(p_job_ids, p_attempts) as h(id, attempt)),
        locked as (
            select jb.id from agentq.jobs jb join held h on h.id = jb.id and h.attempt = jb.attempt
             where jb.status = 'running' and jb.worker = p_worker
             for no key update of jb skip locked),
        extended as (
            update agentq.jobs jb set lease_expires_at = now() + p_lease
              from locked l where jb.id = l.id
            returning jb.id, jb.cancel_requested)
        select e.id, e.cancel_requested from extended e
        union all
        select jb.id, jb.cancel_requested from agentq.jobs jb join held h on h.id = jb.id and h.attempt = jb.attempt
         where jb.status = 'running' and jb.worker = p_worker and jb.id not in (select l.id from locked l);
    update agentq.worker_registry set heartbeat_at = now(), in_hand = cardinality(p_job_ids) where id = p_worker;
end $$;

-- The status a finished attempt leaves its job in. A cancel request wins over everything but success.
create or replace function agentq.finish_status(p_outcome text, p_cancel_requested boolean, p_attempt int, p_max_attempts int)
returns text language sql immutable as $$
    select case
        when p_outcome = 'succeeded' then 'succeeded'
        when p_cancel_requested or p_outcome = 'cancelled' then 'cancelled'
        when p_outcome = 'requires_action' then 'requires_action'
        when p_outcome = 'failed' then 'failed'
        when p_outcome = 'released' then 'queued'
        when p_attempt >= p_max_attempts then 'failed'
        else 'queued' end
$$;

-- Finishing jobs ------------------------------------------------------------------------------------
--
-- finish_jobs ends a batch of held jobs in one transaction. Each step below is one set-based
-- statement over the whole batch, in this order: parse the items, lock their threads and jobs (items
-- whose rows another transaction holds are set aside, to be retried), apply the fenced outcomes,
-- write each stream's last delta, turn streamed replies into final messages (their streams finish),
-- fail the other pending messages (their streams abort), save new messages, usage and raw LLM calls,
-- let each ended head's thread move on, then send every event in order. The steps return their
-- events instead of sending them, so a listener sees them only in that order.

-- One item of finish_jobs, parsed. `stream`: {"stream_id", "seq", "delta"} (the job's last, unwritten
-- delta); `llm_calls`: raw calls to keep when the agent sets log_raw ([{"provider", "model", "url",
-- "request", "response", "http_status", "error", "duration_ms"}]).
do $$ begin
    if not exists (select 1 from pg_type t join pg_namespace n on n.oid = t.typnamespace
                    where n.nspname = 'agentq' and t.typname = 'finish_item') then
        create type agentq.finish_item as (
            job_id bigint, attempt int, outcome text, error text, retry_at timestamptz, result jsonb,
            messages jsonb, usage jsonb, thread_id uuid, user_id text, agent_name text, prompt_message_id uuid,
            stream jsonb, llm_calls jsonb);
    end if;
end $$;

-- The items of a batch (the JSON of FinishItem.json), each with its job's thread, user, agent and
-- prompt, in job id order.
create or replace function agentq.finish_items(p_items jsonb) returns agentq.finish_item[]
language sql stable as $$
    select coalesce(array_agg(row(x.job_id, x.attempt, x.outcome, x.error, x.retry_at, x.result, x.messages, x.usage,
                                  jb.thread_id, jb.user_id, jb.agent_name, jb.prompt_message_id, x.stream, x.llm_calls)::agentq.finish_item
                              order by x.job_id), '{}')
      from jsonb_to_recordset(p_items) as x(job_id bigint, attempt int, outcome text, error text,
                                            retry_at timestamptz, result jsonb, messages jsonb, usage jsonb, stream jsonb,
                                            llm_calls jsonb)
      left join agentq.jobs jb on jb.id = x.job_id
$$;

-- The fenced status change: each job this worker still holds in this attempt takes the status its
-- outcome gives (agentq.finish_status) and lets go of its lease. Returns the jobs it changed and the
-- threads whose head ended (so their next job may run).
create or replace function agentq.finish_apply_outcomes(p_worker text, p_items agentq.finish_item[],
                                                        out applied_ids bigint[], out ended_threads uuid[])
language sql as $$
    with upd as (
        update agentq.jobs jb
           set status = agentq.finish_status(fi.outcome, jb.cancel_requested, jb.attempt, jb.max_attempts),
               attempt = case when fi.outcome = 'released' and not jb.cancel_requested then jb.attempt - 1 else jb.attempt end,
               run_at = case when fi.outcome = 'retry' then coalesce(fi.retry_at, now())
                             when fi.outcome = 'released' then now() else jb.run_at end,
               result = case when fi.outcome in ('succeeded', 'requires_action') then fi.result else jb.result end,
               last_error = case when fi.outcome in ('succeeded', 'requires_action') then jb.last_error
                                 when jb.cancel_requested or fi.outcome = 'cancelled' then 'cancelled'
                                 when fi.outcome = 'released' then jb.last_error
                                 else coalesce(fi.error, fi.outcome) end,
               finished_at = case when agentq.finish_status(fi.outcome, jb.cancel_requested, jb.attempt, jb.max_attempts)
                                       not in ('queued', 'requires_action') then now() end,
               blocked = false, worker = null, lease_expires_at = null
          from unnest(p_items) fi
         where jb.id = fi.job_id and jb.status = 'running' and jb.worker = p_worker and jb.attempt = fi.attempt
        returning jb.id, jb.thread_id, jb.status)
    select coalesce(array_agg(upd.id), '{}'),
           coalesce(array_agg(distinct upd.thread_id) filter (where upd.status not in ('queued', 'requires_action')
                                                              and upd.thread_id is not null), '{}')
      from upd
$$;

-- Each applied item's last delta, written gap-free (only right after its stream's last seq) before
-- the stream ends. A last delta that starts at a seq already written (it leads with a tick whose
-- answer the worker lost) is written only for the part past what landed, when what landed is its
-- start; otherwise it is dropped (the final message holds the whole text). Returns the stream.delta
-- events.
create or replace function agentq.finish_last_deltas(p_items agentq.finish_item[], p_applied bigint[]) returns jsonb[]
language sql as $$
    with fd as (
        select (fi.stream->>'stream_id')::uuid as stream_id, (fi.stream->>'seq')::int as seq, fi.stream->>'delta' as text
          from unnest(p_items) fi
         where fi.job_id = any (p_applied) and fi.stream->>'delta' is not null),
    tail as (
        select fd.stream_id, s.last_seq + 1 as seq,
               case when fd.seq = s.last_seq + 1 then fd.text else substr(fd.text, length(landed.text) + 1) end as text
          from fd
          join agentq.streams s on s.id = fd.stream_id and s.status = 'streaming'
          left join lateral (select string_agg(sd.text, '' order by sd.seq) as text from agentq.stream_deltas sd
                              where fd.seq <= s.last_seq and sd.stream_id = fd.stream_id and sd.seq >= fd.seq) landed on true
         where fd.seq = s.last_seq + 1
            or (fd.seq <= s.last_seq and starts_with(fd.text, landed.text) and length(fd.text) > length(landed.text))),
    ins as (
        insert into agentq.stream_deltas (stream_id, seq, text)
        select tail.stream_id, tail.seq, tail.text from tail
        returning stream_id, seq, text),
    moved as (
        update agentq.streams s set last_seq = ins.seq, updated_at = now() from ins where s.id = ins.stream_id
        returning s.id, s.thread_id, s.job_id, s.message_id, ins.seq, ins.text)
    select coalesce(array_agg(jsonb_build_object('type', 'stream.delta', 'thread_id', m.thread_id, 'job_id', m.job_id,
                                                 'message_id', m.message_id, 'stream_id', m.id, 'seq', m.seq,
                                                 'text', m.text) order by m.job_id), '{}')
      from moved m
$$;

-- A success's reply that was streamed into a pending message becomes that message (same id), and
-- its stream finishes, so a reader never sees a finished stream without its text. Returns the
-- messages finalized and the message.updated and stream.finished events.
create or replace function agentq.finish_streamed_replies(p_items agentq.finish_item[], p_applied bigint[],
                                                          out finalized uuid[], out events jsonb[])
language plpgsql as $$
declare
    finished jsonb[];
begin
    with fin as (
        update agentq.messages m
           set content = coalesce(e.msg->'content', m.content), text = e.msg->>'text',
               status = coalesce(e.msg->>'status', 'success'), error = e.msg->>'error',
               model = coalesce(e.msg->>'model', m.model), provider = coalesce(e.msg->>'provider', m.provider),
               usage = e.msg->'usage', finish_reason = e.msg->>'finish_reason',
               tool = coalesce((e.msg->>'tool')::boolean, false), updated_at = now()
          from unnest(p_items) fi cross join lateral jsonb_array_elements(fi.messages) as e(msg)
         where fi.job_id = any (p_applied) and fi.outcome = 'succeeded' and jsonb_typeof(fi.messages) = 'array'
           and m.id = (e.msg->>'id')::uuid and m.job_id = fi.job_id and m.status = 'pending'
        returning m.id, m.thread_id, m.job_id, m.status)
    select coalesce(array_agg(fin.id), '{}'),
           coalesce(array_agg(jsonb_build_object('type', 'message.updated', 'thread_id', fin.thread_id, 'message_id', fin.id,
                                                 'job_id', fin.job_id, 'status', fin.status) order by fin.job_id), '{}')
      into finalized, events from fin;
    with done as (
        update agentq.streams s set status = 'finished', updated_at = now()
         where s.message_id = any (finalized) and s.status = 'streaming'
        returning s.id, s.thread_id, s.job_id, s.message_id, s.last_seq)
    select coalesce(array_agg(jsonb_build_object('type', 'stream.finished', 'thread_id', d.thread_id, 'job_id', d.job_id,
                                                 'message_id', d.message_id, 'stream_id', d.id, 'seq', d.last_seq,
                                                 'status', 'finished') order by d.job_id), '{}')
      into finished from done d;
    events := events || finished;
end $$;

-- Every other pending message of the applied attempts fails, keeping what was streamed into it, and
-- its stream aborts (agentq.end_streams), with the outcome as the reason. Returns the events.
create or replace function agentq.finish_abort_streams(p_items agentq.finish_item[], p_applied bigint[]) returns jsonb[]
language sql as $$
    select agentq.end_streams(
        array(select fi.job_id from unnest(p_items) fi where fi.job_id = any (p_applied) order by fi.job_id),
        array(select fi.outcome from unnest(p_items) fi where fi.job_id = any (p_applied) order by fi.job_id),
        array(select case fi.outcome when 'cancelled' then 'cancelled' when 'released' then 'worker shut down'
                                     when 'succeeded' then 'superseded' when 'requires_action' then 'waiting for tool outputs'
                                     else coalesce(fi.error, fi.outcome) end
                from unnest(p_items) fi where fi.job_id = any (p_applied) order by fi.job_id))
$$;

-- The applied items' new messages (all but the finalized streamed replies) go at the prompt's ord
-- (or the thread's newest), after the last step there, in job and item order. Returns the
-- message.created events.
create or replace function agentq.finish_save_messages(p_items agentq.finish_item[], p_applied bigint[],
                                                       p_finalized uuid[]) returns jsonb[]
language sql as $$
    with placed as (
            select fi.*, coalesce(pm.ord, t.last_ord) as ord
              from unnest(p_items) fi
              left join agentq.messages pm on pm.id = fi.prompt_message_id
              left join agentq.threads t on t.id = fi.thread_id
             where fi.job_id = any (p_applied) and fi.thread_id is not null
               and jsonb_typeof(fi.messages) = 'array'),
    fresh as (
        select p.*, e.msg, e.idx
          from placed p cross join lateral jsonb_array_elements(p.messages) with ordinality as e(msg, idx)
         where (e.msg->>'id') is null or not ((e.msg->>'id')::uuid = any (p_finalized))),
    inserted as (
        insert into agentq.messages (id, thread_id, user_id, agent_name, ord, step, role, content, text, status,
                                     error, model, provider, usage, finish_reason, tool, job_id)
        select coalesce((f.msg->>'id')::uuid, gen_random_uuid()), f.thread_id, f.user_id,
               coalesce(f.msg->>'agent_name', f.agent_name), f.ord,
               coalesce((select max(m.step) from agentq.messages m where m.thread_id = f.thread_id and m.ord = f.ord), -1)
                 + row_number() over (partition by f.thread_id, f.ord order by f.job_id, f.idx),
               coalesce(f.msg->>'role', 'assistant'), coalesce(f.msg->'content', '[]'), f.msg->>'text',
               coalesce(f.msg->>'status', 'success'), f.msg->>'error', f.msg->>'model', f.msg->>'provider',
               f.msg->'usage', f.msg->>'finish_reason', coalesce((f.msg->>'tool')::boolean, false), f.job_id
          from fresh f
        returning id, thread_id, job_id, status, step)
    select coalesce(array_agg(jsonb_build_object('type', 'message.created', 'thread_id', i.thread_id, 'message_id', i.id,
                                                 'job_id', i.job_id, 'status', i.status) order by i.job_id, i.step), '{}')
      from inserted i
$$;

-- Token usage of every item, applied or not: the calls were made (and billed) either way.
create or replace function agentq.finish_save_usage(p_items agentq.finish_item[]) returns void
language sql as $$
    insert into agentq.usage (user_id, thread_id, agent_name, job_id, message_id, kind, provider, model,
                              prompt_tokens, completion_tokens, total_tokens, raw)
    select fi.user_id, fi.thread_id, fi.agent_name, fi.job_id, (u->>'message_id')::uuid, coalesce(u->>'kind', 'chat'),
           u->>'provider', u->>'model', coalesce((u->>'prompt_tokens')::int, 0), coalesce((u->>'completion_tokens')::int, 0),
           coalesce((u->>'total_tokens')::int, coalesce((u->>'prompt_tokens')::int, 0) + coalesce((u->>'completion_tokens')::int, 0)),
           u->'raw'
      from unnest(p_items) fi cross join lateral jsonb_array_elements(coalesce(fi.usage, '[]')) as u
$$;

-- The raw LLM calls of the applied items (sent only when the agent sets log_raw).
create or replace function agentq.finish_save_llm_calls(p_items agentq.finish_item[], p_applied bigint[]) returns void
language sql as $$
    insert into agentq.llm_calls (job_id, thread_id, user_id, provider, model, url, request, response, http_status,
                                  error, duration_ms)
    select fi.job_id, fi.thread_id, fi.user_id, c->>'provider', c->>'model', c->>'url', c->'request', c->'response',
           (c->>'http_status')::int, c->>'error', (c->>'duration_ms')::int
      from unnest(p_items) fi cross join lateral jsonb_array_elements(coalesce(fi.llm_calls, '[]')) as c
     where fi.job_id = any (p_applied)
$$;

-- The job.<status> event of each applied job, as it now is (an ended job's error rides as text, a
-- parked job's pending tool calls as result).
create or replace function agentq.finish_job_events(p_job_ids bigint[]) returns jsonb[]
language sql stable as $$
    select coalesce(array_agg(jsonb_build_object('type', 'job.' || jb.status, 'thread_id', jb.thread_id, 'job_id', jb.id,
                                                 'status', jb.status,
                                                 'text', case when jb.status not in ('succeeded', 'requires_action') then jb.last_error end,
                                                 'result', case when jb.status = 'requires_action' then jb.result end) order by jb.id), '{}')
      from agentq.jobs jb where jb.id = any (p_job_ids)
$$;

-- Ends held jobs in one transaction per batch, fenced: an item whose job this worker no longer holds
-- in that attempt changes nothing but its usage. A success's streamed reply turns its pending message
-- into the final one and finishes its stream with its last delta; any other outcome keeps what was
-- streamed on a failed message and aborts the stream. Returns, per item, whether it applied, and
-- whether it was `blocked`: its thread or job row was held by another transaction (a producer's left
-- open, say), so nothing of it was written and the worker tries it again; the others do not wait.
create or replace function agentq.finish_jobs(p_worker text, p_items jsonb)
returns table (job_id bigint, applied boolean, blocked boolean) language plpgsql
set lock_timeout = '5s'   -- only for rows beyond the batch's own threads and jobs (skipped below when held)
set plan_cache_mode = force_generic_plan   -- the steps' statements are planned once per session, not per call
as $$
#variable_conflict use_column
declare
    parsed agentq.finish_item[] := agentq.finish_items(p_items);
    items agentq.finish_item[];
    locked_threads uuid[];
    locked_jobs bigint[];
    blocked_ids bigint[];
    applied_ids bigint[];
    ended_threads uuid[];
    finalized uuid[];
    replies jsonb[];
    events jsonb[];
begin
    -- Lock order: threads, then jobs. Rows another transaction holds are skipped, not waited for.
    select coalesce(array_agg(t.id), '{}') into locked_threads
      from (select th.id from agentq.threads th where th.id in (select fi.thread_id from unnest(parsed) fi)
             order by th.id for no key update skip locked) t;
    select coalesce(array_agg(j.id), '{}') into locked_jobs
      from (select jb.id from agentq.jobs jb
             where jb.id in (select fi.job_id from unnest(parsed) fi
                              where fi.thread_id is null or fi.thread_id = any (locked_threads))
             order by jb.id for no key update skip locked) j;
    select coalesce(array_agg(fi.job_id), '{}') into blocked_ids
      from unnest(parsed) fi
     where (fi.thread_id is not null and not (fi.thread_id = any (locked_threads)))
        or (not (fi.job_id = any (locked_jobs)) and exists (select 1 from agentq.jobs jb where jb.id = fi.job_id));
    items := array(select fi::agentq.finish_item from unnest(parsed) fi
                    where not (fi.job_id = any (blocked_ids)) order by fi.job_id);
    select o.applied_ids, o.ended_threads into applied_ids, ended_threads from agentq.finish_apply_outcomes(p_worker, items) o;
    -- Each later step runs only when the batch has something for it (a test over the parsed items,
    -- or an index probe): most batches of a turn need few of them, and a step's statements cost more
    -- than the test (BENCHMARKS.md "agentq bench turns").
    events := '{}';
    finalized := '{}';
    if exists (select 1 from unnest(items) fi where fi.job_id = any (applied_ids) and fi.stream->>'delta' is not null) then
        events := agentq.finish_last_deltas(items, applied_ids);
    end if;
    if exists (select 1 from unnest(items) fi
                where fi.job_id = any (applied_ids) and fi.outcome = 'succeeded' and jsonb_typeof(fi.messages) = 'array') then
        select r.finalized, r.events into finalized, replies from agentq.finish_streamed_replies(items, applied_ids) r;
        events := events || replies;
    end if;
    if exists (select 1 from agentq.messages m where m.job_id = any (applied_ids) and m.status = 'pending')
       or exists (select 1 from agentq.streams s where s.job_id = any (applied_ids) and s.status = 'streaming') then
        events := events || agentq.finish_abort_streams(items, applied_ids);
    end if;
    if exists (select 1 from unnest(items) fi
                cross join lateral jsonb_array_elements(case when jsonb_typeof(fi.messages) = 'array' then fi.messages end) e(msg)
                where fi.job_id = any (applied_ids) and fi.thread_id is not null
                  and ((e.msg->>'id') is null or not ((e.msg->>'id')::uuid = any (finalized)))) then
        events := events || agentq.finish_save_messages(items, applied_ids, finalized);
    end if;
    if exists (select 1 from unnest(items) fi where jsonb_typeof(fi.usage) = 'array' and jsonb_array_length(fi.usage) > 0) then
        perform agentq.finish_save_usage(items);
    end if;
    if exists (select 1 from unnest(items) fi
                where fi.job_id = any (applied_ids) and jsonb_typeof(fi.llm_calls) = 'array' and jsonb_array_length(fi.llm_calls) > 0) then
        perform agentq.finish_save_llm_calls(items, applied_ids);
    end if;
    if cardinality(ended_threads) > 0 then
        perform agentq.touch_threads(ended_threads);
        perform agentq.unblock_next(ended_threads);
    end if;
    perform agentq.emit_all(events || agentq.finish_job_events(applied_ids));
    return query select fi.job_id, fi.job_id = any (applied_ids), fi.job_id = any (blocked_ids) from unnest(parsed) fi;
end $$;

-- Context ----------------------------------------------------------------------------------------

-- The messages a generation reads: one row per (job, message) holding the job's prompt position,
-- the thread's agent_options and one of the newest successful messages up to the prompt's ord (a job
-- whose thread has none gets one row with null message columns). Each job reads its own
-- `context.recent_messages`: from the job's options, else the thread's agent_options, else the
-- agent's (the whole `context` object of the first layer that has one, as GenerationSettings merges
-- them one level deep), else `p_recent` (the worker's default). Workers cut the window at a turn
-- boundary (ContextAssembler.window) and split off the replies already saved for the prompt.
-- The newest messages are read by walking the (thread_id, ord, step) index backwards, whatever the
-- statistics say: with stale statistics (a young table) the planner chose a bitmap scan that sorted
-- the whole thread on every turn, a cost that grew with the thread (BENCHMARKS.md "agentq bench
-- turns"). Plans are generic: the statement is the same on every turn.
create or replace function agentq.job_contexts(p_job_ids bigint[], p_recent int)
returns table (job_id bigint, prompt_ord int, prompt_step int, thread_agent_options text,
               message_id uuid, role text, text text, content text, ord int, step int, tool boolean)
language sql stable
set enable_bitmapscan = off set enable_seqscan = off set plan_cache_mode = force_generic_plan as $$
    select j.id, p.ord, p.step, (t.metadata->'agent_options')::text,
           m.id, m.role, m.text, m.content::text, m.ord, m.step, m.tool
      from unnest(p_job_ids) as x(id)
      join agentq.jobs j on j.id = x.id
      left join agentq.threads t on t.id = j.thread_id
      left join agentq.agents a on a.name = j.agent_name
      left join agentq.messages p on p.id = j.prompt_message_id
      left join lateral (select * from agentq.messages mm
                          where mm.thread_id = j.thread_id and mm.status = 'success'
                            and (p.ord is null or mm.ord <= p.ord)
                          order by mm.ord desc, mm.step desc
                          limit greatest(0, agentq.option_int(coalesce(j.options->'context', t.metadata #> '{agent_options,context}',
                                                                       a.options->'context')->'recent_messages', p_recent))) m on true
     order by j.id, m.ord, m.step
$$;

-- Housekeeping -----------------------------------------------------------------------------------

-- Housekeeping, run by one worker at a time: prunes finished jobs, ended streams' deltas and raw LLM
-- calls past their retention (job_retention, delta_retention, llm_call_retention), and forgets dead listener sessions and workers. Returns what it deleted.
create or replace function agentq.prune(p_batch int default 1000) returns jsonb
language plpgsql as $$
declare
    jobs_deleted int;
    deltas_deleted int;
    llm_calls_deleted int;
    stuck uuid[];
begin
    if not pg_try_advisory_xact_lock(hashtext('agentq.prune')) then
        return '{"skipped": true}';
    end if;
    delete from agentq.jobs where id in (
        select id from agentq.jobs
         where finished_at < now() - (agentq.setting('job_retention') #>> '{}')::interval
         order by finished_at limit p_batch);
    get diagnostics jobs_deleted = row_count;
    delete from agentq.stream_deltas d where (d.stream_id, d.seq) in (
        select d2.stream_id, d2.seq from agentq.streams s join agentq.stream_deltas d2 on d2.stream_id = s.id
         where s.status <> 'streaming' and s.updated_at < now() - (agentq.setting('delta_retention') #>> '{}')::interval
         limit p_batch);
    get diagnostics deltas_deleted = row_count;
    delete from agentq.llm_calls where id in (
        select id from agentq.llm_calls
         where at < now() - coalesce(agentq.setting('llm_call_retention') #>> '{}', '7 days')::interval
         order by at limit p_batch);
    get diagnostics llm_calls_deleted = row_count;
    -- Backstop: threads with waiting jobs and no head (which the rules above should never leave).
    select coalesce(array_agg(t.id), '{}') into stuck
      from (select th.id from agentq.threads th
             where th.id in (select b.thread_id from agentq.jobs b
                              where b.blocked and b.status = 'queued'
                                and not exists (select 1 from agentq.jobs h
                                                 where h.thread_id = b.thread_id
                                                   and h.status in ('queued', 'running', 'requires_action')
                                                   and not h.blocked and not h.concurrent and h.kind = 'generate')
                              limit 1000)
             order by th.id for no key update skip locked) t;
    if cardinality(stuck) > 0 then
        perform agentq.unblock_next(stuck);
    end if;
    delete from agentq.listeners l
     where not exists (select 1 from pg_stat_activity a where a.pid = l.pid and a.backend_start = l.backend_start);
    delete from agentq.worker_registry where heartbeat_at < now() - interval '10 minutes';
    return jsonb_build_object('jobs', jobs_deleted, 'deltas', deltas_deleted, 'llm_calls', llm_calls_deleted,
                              'threads_unblocked', cardinality(stuck));
end $$;

insert into agentq.schema_migrations (version, name) values ('003', 'worker_api') on conflict (version) do nothing;
