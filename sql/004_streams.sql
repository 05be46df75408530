-- AgentQueue 004: the database side of streamed replies (README.md "Streaming"). Workers call these;
-- each is one statement per batch, fenced like every worker write (status = 'running' and worker and
-- attempt), so a worker that lost its lease writes nothing. finish_jobs (003_worker_api.sql) writes a
-- stream's last delta and ends it with its job.

-- Opens a stream per item: a pending assistant message at the prompt's ord (after its last step) and
-- a `streaming` stream row for it, with `message.created` and `stream.started` events.
-- Items: [{"job_id", "attempt", "message_id", "stream_id", "model", "provider", "agent_name"}].
-- Returns the streams opened (an item whose job this worker no longer holds opens nothing).
create or replace function agentq.open_streams(p_worker text, p_items jsonb)
returns table (stream_id uuid, message_id uuid) language plpgsql
set plan_cache_mode = force_generic_plan as $$
#variable_conflict use_column
declare
    opened jsonb[];
begin
    -- Lock order: threads first (by id), as everywhere.
    perform 1 from agentq.threads t
     where t.id in (select jb.thread_id from agentq.jobs jb
                     where jb.id in (select (x->>'job_id')::bigint from jsonb_array_elements(p_items) x))
     order by t.id for no key update;
    with items as (
        select x.*, jb.thread_id, jb.user_id, jb.agent_name as job_agent, coalesce(pm.ord, t.last_ord) as ord
          from jsonb_to_recordset(p_items) as x(job_id bigint, attempt int, message_id uuid, stream_id uuid,
                                                model text, provider text, agent_name text)
          join agentq.jobs jb on jb.id = x.job_id and jb.status = 'running' and jb.worker = p_worker
                              and jb.attempt = x.attempt
          join agentq.threads t on t.id = jb.thread_id
          left join agentq.messages pm on pm.id = jb.prompt_message_id),
    msgs as (
        insert into agentq.messages (id, thread_id, user_id, agent_name, ord, step, role, content, text, status,
                                     model, provider, job_id)
        select i.message_id, i.thread_id, i.user_id, coalesce(i.agent_name, i.job_agent), i.ord,
               coalesce((select max(m.step) from agentq.messages m where m.thread_id = i.thread_id and m.ord = i.ord), -1)
                 + row_number() over (partition by i.thread_id, i.ord order by i.job_id),
               'assistant', '[]', '', 'pending', i.model, i.provider, i.job_id
          from items i
        returning id, thread_id, job_id),
    streams as (
        insert into agentq.streams (id, thread_id, user_id, job_id, message_id)
        select i.stream_id, i.thread_id, i.user_id, i.job_id, i.message_id from items i
        returning id, message_id, thread_id, job_id)
    select coalesce(array_agg(jsonb_build_object('stream_id', s.id, 'message_id', s.message_id,
                                                 'thread_id', s.thread_id, 'job_id', s.job_id)), '{}')
      into opened from streams s join msgs m on m.id = s.message_id;
    perform agentq.emit_all(array(
        select e from unnest(opened) o,
               lateral (values (jsonb_build_object('type', 'message.created', 'thread_id', o->>'thread_id',
                                                   'job_id', (o->>'job_id')::bigint, 'message_id', o->>'message_id',
                                                   'status', 'pending')),
                               (jsonb_build_object('type', 'stream.started', 'thread_id', o->>'thread_id',
                                                   'job_id', (o->>'job_id')::bigint, 'message_id', o->>'message_id',
                                                   'stream_id', o->>'stream_id', 'status', 'streaming'))) v(e)));
    return query select (o->>'stream_id')::uuid, (o->>'message_id')::uuid from unnest(opened) o;
end $$;

-- Writes one tick of deltas for all of a worker's live streams, in one statement, with a
-- `stream.delta` event each (the text rides in the event; "truncated": true when it does not fit).
-- Deltas: [{"stream_id", "attempt", "seq", "text", "parts"}]. A delta is written only when its stream
-- is still `streaming`, its job still held (worker and attempt), and its seq follows the stream's last
-- (no gaps, no duplicates). A delta sent again exactly as it was already written (the worker lost the
-- answer to the statement that wrote it) counts as written and changes nothing. Returns, per stream,
-- whether its delta is written and whether the worker must stop that generation (cancel requested,
-- stream no longer streaming, job no longer held, or a seq gap). Delta ticks commit asynchronously: losing the newest ticks in a server crash only loses
-- text that the retried attempt writes again, and the seq check catches the gap.
create or replace function agentq.write_deltas(p_worker text, p_deltas jsonb)
returns table (stream_id uuid, written boolean, stop boolean) language plpgsql
set plan_cache_mode = force_generic_plan as $$
#variable_conflict use_column
declare
    out_ids uuid[];
    out_written boolean[];
    out_stops boolean[];
    events jsonb[];
begin
    perform set_config('synchronous_commit', 'off', true);
    with d as (
        select x.* from jsonb_to_recordset(p_deltas) as x(stream_id uuid, attempt int, seq int, text text, parts jsonb)),
    checked as (
        select d.*, s.thread_id, s.job_id, s.message_id,
               (s.status = 'streaming' and s.last_seq = d.seq - 1 and jb.status = 'running'
                and jb.worker = p_worker and jb.attempt = d.attempt) as ok,
               coalesce(jb.cancel_requested, true) or s.status is distinct from 'streaming'
                 or jb.status is distinct from 'running' or jb.worker is distinct from p_worker
                 or jb.attempt is distinct from d.attempt
                 or (s.last_seq is distinct from d.seq - 1 and not coalesce(dup.landed, false)) as stop,
               coalesce(dup.landed, false) as landed
          from d
          left join agentq.streams s on s.id = d.stream_id
          left join agentq.jobs jb on jb.id = s.job_id
          left join lateral (select true as landed from agentq.stream_deltas sd
                              where d.seq <= s.last_seq and sd.stream_id = d.stream_id and sd.seq = d.seq
                                and sd.text = coalesce(d.text, '')) dup on true),
    ins as (
        insert into agentq.stream_deltas (stream_id, seq, text, parts)
        select c.stream_id, c.seq, coalesce(c.text, ''), c.parts from checked c where c.ok
        returning stream_id),
    -- updated_at is the time of the stream's last delta: followers catch up on the streams updated
    -- since they lost their connection (ThreadFollower).
    upd as (
        update agentq.streams s set last_seq = c.seq, updated_at = now()
          from checked c where c.ok and s.id = c.stream_id
        returning s.id)
    -- The answer and the events straight from the checked rows, in stream order (no JSON in between).
    select coalesce(array_agg(c.stream_id order by c.stream_id), '{}'),
           coalesce(array_agg(c.ok or c.landed order by c.stream_id), '{}'),
           coalesce(array_agg(c.stop order by c.stream_id), '{}'),
           coalesce(array_agg(jsonb_build_object('type', 'stream.delta', 'thread_id', c.thread_id, 'job_id', c.job_id,
                                                 'message_id', c.message_id, 'stream_id', c.stream_id, 'seq', c.seq,
                                                 'text', c.text)
                              order by c.stream_id) filter (where c.ok), '{}')
      into out_ids, out_written, out_stops, events from checked c;
    perform agentq.emit_all(events);
    return query select * from unnest(out_ids, out_written, out_stops);
end $$;

insert into agentq.schema_migrations (version, name) values ('004', 'streams') on conflict (version) do nothing;
