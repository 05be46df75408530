-- AgentQueue 005: tools (README.md "Tools"). A generation's model step that calls tools is saved by the
-- worker in one transaction: the assistant message with the calls, a `tool_calls` row per call keyed
-- by (job_id, tool_call_id), each SQL tool's own writes and its result message. A call that committed
-- is never run again, and one that did not commit left nothing behind. HTTP and Swift tools run after
-- that transaction (their rows wait as `running`; a retried job re-runs them with the same
-- Idempotency-Key). Client tools and tools with `needs_approval` park the job in `requires_action`
-- until `submit_tool_outputs` / `approve_tool_call` answer every call. The tables (agentq.tools,
-- agentq.tool_calls) are in 001_schema.sql.

-- Tools are checked when registered: a `sql` target must name a function (args jsonb, ctx jsonb)
-- returning jsonb; an `http` target must be an http(s) URL; parameters must be an object schema.
create or replace function agentq.tools_check() returns trigger
language plpgsql as $$
declare
    fn regprocedure;
begin
    if new.kind = 'sql' then
        fn := to_regprocedure(new.target || '(jsonb, jsonb)');
        if fn is null then
            raise exception 'sql tool "%": no function %(args jsonb, ctx jsonb)', new.name, new.target using errcode = '42883',
                hint = 'create the function first; name it schema-qualified, e.g. public.lookup_order';
        end if;
        if (select p.prorettype from pg_proc p where p.oid = fn) <> 'jsonb'::regtype then
            raise exception 'sql tool "%": % must return jsonb', new.name, fn using errcode = '42P13';
        end if;
    elsif new.kind = 'http' and new.target !~ '^https?://[^/]+' then
        raise exception 'http tool "%": target must be an http or https URL, got "%"', new.name, new.target
            using errcode = '22023';
    end if;
    if new.parameters->>'type' is distinct from 'object' then
        raise exception 'tool "%": parameters must be a JSON Schema with "type": "object"', new.name using errcode = '22023';
    end if;
    if new.options ? 'timeout_ms' and not (jsonb_typeof(new.options->'timeout_ms') = 'number'
                                           and (new.options->>'timeout_ms')::numeric between 1 and 600000) then
        raise exception 'tool "%": options.timeout_ms must be a number of milliseconds between 1 and 600000', new.name
            using errcode = '22023';
    end if;
    if new.options ? 'needs_approval' and jsonb_typeof(new.options->'needs_approval') <> 'boolean' then
        raise exception 'tool "%": options.needs_approval must be true or false', new.name using errcode = '22023';
    end if;
    return new;
end $$;

drop trigger if exists tools_check on agentq.tools;
create trigger tools_check before insert or update on agentq.tools
    for each row execute function agentq.tools_check();

-- A producer answers calls only as submit_tool_outputs, approve_tool_call and supersede_parked do
-- (they run with its rights): a waiting call is approved, or gets its result. The call itself (job,
-- thread, user, tool, kind, arguments) is the worker's record and never changes: run_sql_tool takes
-- them from the row. Anything else is 42501. (The producer has no INSERT or DELETE on tool_calls.)
create or replace function agentq.tool_calls_before_update() returns trigger
language plpgsql as $$
declare
    changed text[];
begin
    select coalesce(array_agg(n.key order by n.key), '{}') into changed
      from jsonb_each(to_jsonb(new)) n join jsonb_each(to_jsonb(old)) o on o.key = n.key
     where n.value is distinct from o.value;
    if changed = '{}'
       or (old.status = 'awaiting_approval' and new.status = 'approved' and changed = array['status'])
       or (old.status in ('awaiting_client', 'awaiting_approval') and new.status = 'done' and new.result_message_id is not null
           and changed <@ array['status', 'result', 'is_error', 'result_message_id', 'finished_at']) then
        return new;
    end if;
    raise exception 'a producer may not change % of tool call "%" of job % (status % to %)', array_to_string(changed, ', '),
                    old.tool_call_id, old.job_id, old.status, new.status
        using errcode = '42501', hint = 'answer calls with agentq.submit_tool_outputs and agentq.approve_tool_call';
end $$;

drop trigger if exists tool_calls_before_update on agentq.tool_calls;
create trigger tool_calls_before_update before update on agentq.tool_calls
    for each row when (row_security_active('agentq.jobs'::regclass) and not pg_has_role('agentq_worker', 'usage')) execute function agentq.tool_calls_before_update();

-- Inserts tool-result messages for calls of a job and marks the calls done; a call already done is
-- left alone (exactly once). Results: [{"tool_call_id", "result", "is_error"}]. Returns the events.
create or replace function agentq.record_tool_results(p_job_id bigint, p_results jsonb)
returns jsonb[] language plpgsql as $$
declare
    r record;
    msg_id uuid;
    next_step int;
    ord_ int;
    pending_id uuid;
    pending_step int;
    events jsonb[] := '{}';
begin
    for r in select tc.*, x.result as new_result, coalesce(x.is_error, false) as new_is_error, cm.ord as call_ord
               from jsonb_to_recordset(p_results) as x(tool_call_id text, result jsonb, is_error boolean)
               join agentq.tool_calls tc on tc.job_id = p_job_id and tc.tool_call_id = x.tool_call_id
               left join agentq.messages cm on cm.id = tc.call_message_id
              where tc.status <> 'done'
              order by tc.created_at, tc.tool_call_id
                for update of tc
    loop
        ord_ := r.call_ord;
        select coalesce(max(m.step), -1) + 1 into next_step from agentq.messages m
         where m.thread_id = r.thread_id and m.ord = ord_;
        -- A pending reply of this job at that ord (a resumed attempt's stream) stays last: the result
        -- takes its step and it moves to the end.
        select m.id, m.step into pending_id, pending_step from agentq.messages m
         where m.thread_id = r.thread_id and m.ord = ord_ and m.job_id = p_job_id and m.status = 'pending'
         order by m.step limit 1;
        if pending_id is not null then
            update agentq.messages set step = next_step where id = pending_id;
            next_step := pending_step;
        end if;
        insert into agentq.messages (thread_id, user_id, agent_name, ord, step, role, content, text, status, tool, job_id)
        select r.thread_id, r.user_id, jb.agent_name, ord_, next_step, 'tool',
               jsonb_build_array(jsonb_build_object('type', 'tool-result', 'tool_call_id', r.tool_call_id,
                                                    'tool_name', r.tool_name, 'result', coalesce(r.new_result, 'null'),
                                                    'is_error', r.new_is_error)),
               coalesce(r.new_result, 'null')::text, 'success', true, p_job_id
          from agentq.jobs jb where jb.id = p_job_id
        returning id into msg_id;
        update agentq.tool_calls set status = 'done', result = r.new_result, is_error = r.new_is_error,
                                     result_message_id = msg_id, finished_at = now()
         where job_id = p_job_id and tool_call_id = r.tool_call_id;
        events := events || jsonb_build_object('type', 'message.created', 'thread_id', r.thread_id, 'job_id', p_job_id,
                                               'message_id', msg_id, 'status', 'success', 'tool_call_id', r.tool_call_id);
    end loop;
    return events;
end $$;

-- Saves one model step of a held job (fenced: running, this worker, this attempt), as the first
-- statement of the worker's step transaction. p_step: {"message": {...} | null, "stream": {"stream_id",
-- "seq", "delta"} | null, "calls": [{"tool_call_id", "tool_name", "kind", "args", "status",
-- "result", "is_error"}], "lease_ms"}. The message is the step's assistant message: it replaces the
-- streamed pending row (same id; its stream finishes with its last delta) or is inserted after the
-- last step of the prompt's ord. Calls given with a status of `done` get their result message now;
-- `running` calls are run next in the same transaction (SQL) or after it (HTTP, Swift). Returns the
-- message's id, or raises 55000 when the job is no longer held.
create or replace function agentq.begin_step(p_worker text, p_job_id bigint, p_attempt int, p_step jsonb)
returns uuid language plpgsql
set plan_cache_mode = force_generic_plan as $$
declare
    j agentq.jobs;
    msg jsonb := p_step->'message';
    msg_id uuid;
    ord_ int;
    events jsonb[] := '{}';
    s agentq.streams;
begin
    select * into j from agentq.jobs where id = p_job_id;
    perform 1 from agentq.threads t where t.id = j.thread_id for no key update;   -- lock order: thread, then job
    select * into j from agentq.jobs jb
     where jb.id = p_job_id and jb.status = 'running' and jb.worker = p_worker and jb.attempt = p_attempt
       for no key update;
    if j.id is null then
        raise exception 'job % is no longer held by worker % (attempt %)', p_job_id, p_worker, p_attempt
            using errcode = '55000';
    end if;
    -- The tools of this step may run up to their timeouts: the lease covers them.
    update agentq.jobs set lease_expires_at = greatest(lease_expires_at, now() + make_interval(secs => coalesce((p_step->>'lease_ms')::numeric, 0) / 1000))
     where id = j.id;

    if msg is not null and jsonb_typeof(msg) = 'object' then
        msg_id := (msg->>'id')::uuid;
        -- The streamed step: its last delta, then the pending row becomes the step's message.
        if p_step->'stream' is not null and jsonb_typeof(p_step->'stream') = 'object' then
            select * into s from agentq.streams where id = (p_step->'stream'->>'stream_id')::uuid and status = 'streaming';
            if s.id is not null and p_step->'stream'->>'delta' is not null and s.last_seq = (p_step->'stream'->>'seq')::int - 1 then
                insert into agentq.stream_deltas (stream_id, seq, text)
                values (s.id, (p_step->'stream'->>'seq')::int, p_step->'stream'->>'delta');
                update agentq.streams set last_seq = last_seq + 1 where id = s.id;
                events := events || jsonb_build_object('type', 'stream.delta', 'thread_id', s.thread_id, 'job_id', j.id,
                                                       'message_id', s.message_id, 'stream_id', s.id,
                                                       'seq', (p_step->'stream'->>'seq')::int, 'text', p_step->'stream'->>'delta');
            end if;
        end if;
        update agentq.messages m
           set content = msg->'content', text = msg->>'text', status = 'success', tool = true,
               model = coalesce(msg->>'model', m.model), provider = coalesce(msg->>'provider', m.provider),
               usage = msg->'usage', finish_reason = msg->>'finish_reason', updated_at = now()
         where m.id = msg_id and m.job_id = j.id and m.status = 'pending';
        if found then
            events := events || jsonb_build_object('type', 'message.updated', 'thread_id', j.thread_id, 'job_id', j.id,
                                                   'message_id', msg_id, 'status', 'success');
            with done as (
                update agentq.streams st set status = 'finished', updated_at = now()
                 where st.message_id = msg_id and st.status = 'streaming'
                returning st.id, st.last_seq)
            select events || coalesce(array_agg(jsonb_build_object('type', 'stream.finished', 'thread_id', j.thread_id,
                                                                   'job_id', j.id, 'message_id', msg_id, 'stream_id', d.id,
                                                                   'seq', d.last_seq, 'status', 'finished')), '{}')
              into events from done d;
        else
            select coalesce(pm.ord, t.last_ord) into ord_ from agentq.threads t
              left join agentq.messages pm on pm.id = j.prompt_message_id
             where t.id = j.thread_id;
            insert into agentq.messages (id, thread_id, user_id, agent_name, ord, step, role, content, text, status,
                                         model, provider, usage, finish_reason, tool, job_id)
            values (msg_id, j.thread_id, j.user_id, j.agent_name, ord_,
                    coalesce((select max(m.step) from agentq.messages m where m.thread_id = j.thread_id and m.ord = ord_), -1) + 1,
                    'assistant', msg->'content', msg->>'text', 'success', msg->>'model', msg->>'provider', msg->'usage',
                    msg->>'finish_reason', true, j.id);
            events := events || jsonb_build_object('type', 'message.created', 'thread_id', j.thread_id, 'job_id', j.id,
                                                   'message_id', msg_id, 'status', 'success');
        end if;

        insert into agentq.tool_calls (job_id, tool_call_id, thread_id, user_id, tool_name, kind, args, status, call_message_id)
        select j.id, c.tool_call_id, j.thread_id, j.user_id, c.tool_name, c.kind, coalesce(c.args, '{}'),
               case when c.status = 'done' then 'running' else c.status end, msg_id
          from jsonb_to_recordset(coalesce(p_step->'calls', '[]')) as c(tool_call_id text, tool_name text, kind text,
                                                                       args jsonb, status text);
    end if;

    events := events || agentq.record_tool_results(j.id, coalesce(
        (select jsonb_agg(c) from jsonb_array_elements(coalesce(p_step->'calls', '[]')) c where c->>'status' = 'done'), '[]'));
    perform agentq.emit_all(events);
    return msg_id;
end $$;

-- Runs one SQL tool call of a job inside the worker's step transaction (the worker wraps it in a
-- savepoint with the tool's statement timeout, and records an error result when it raises). The
-- function comes from the tool registry by the call's tool name; nothing the model sent is SQL text.
-- A call already done returns its recorded result without running again.
create or replace function agentq.run_sql_tool(p_job_id bigint, p_tool_call_id text)
returns jsonb language plpgsql as $$
declare
    c agentq.tool_calls;
    fn regprocedure;
    ctx jsonb;
    out jsonb;
begin
    select * into c from agentq.tool_calls where job_id = p_job_id and tool_call_id = p_tool_call_id for update;
    if c.job_id is null then
        raise exception 'unknown tool call % of job %', p_tool_call_id, p_job_id using errcode = 'P0002';
    end if;
    if c.status = 'done' then
        return c.result;
    end if;
    if c.status not in ('running', 'approved') then
        raise exception 'tool call % of job % is %, not ready to run', p_tool_call_id, p_job_id, c.status using errcode = '55000';
    end if;
    select to_regprocedure(t.target || '(jsonb, jsonb)') into fn from agentq.tools t where t.name = c.tool_name and t.kind = 'sql';
    if fn is null then
        raise exception 'sql tool "%" is not registered (or its function is gone)', c.tool_name using errcode = '42883';
    end if;
    select jsonb_build_object('user_id', c.user_id, 'thread_id', c.thread_id, 'message_id', c.call_message_id,
                              'job_id', c.job_id, 'agent_name', jb.agent_name, 'tool_call_id', c.tool_call_id)
      into ctx from agentq.jobs jb where jb.id = c.job_id;
    execute format('select %s($1, $2)', fn::oid::regproc) into out using c.args, ctx;
    -- The cap on one tool output (README: Limits): the call fails, its writes undone with it.
    if octet_length(out::text) > 1048576 then
        raise exception 'sql tool "%" returned % bytes, over the limit of 1048576 for a tool output', c.tool_name,
            octet_length(out::text) using errcode = '54000';
    end if;
    perform agentq.emit_all(agentq.record_tool_results(p_job_id,
        jsonb_build_array(jsonb_build_object('tool_call_id', p_tool_call_id, 'result', coalesce(out, 'null'::jsonb)))));
    return out;
end $$;

-- Puts a parked job back in the queue once none of its calls waits for an answer. The resumed
-- attempt runs approved calls, then asks the model again; it does not use up max_attempts: the
-- parked attempt is given back (attempt - 1), so a job resumes however often it parks. A job parked
-- on its first attempt keeps attempt 1 (its resumed attempt must be numbered above 1: the worker
-- then reads the calls left open) and gets one more attempt instead, within max_attempts' 1..100.
create or replace function agentq.resume_if_answered(p_job_id bigint) returns boolean
language plpgsql as $$
declare
    j agentq.jobs;
begin
    if exists (select 1 from agentq.tool_calls where job_id = p_job_id and status in ('awaiting_client', 'awaiting_approval')) then
        return false;
    end if;
    update agentq.jobs
       set status = 'queued', run_at = now(), result = null, attempt = greatest(attempt - 1, 1),
           max_attempts = case when attempt > 1 then max_attempts else least(max_attempts + 1, 100) end
     where id = p_job_id and status = 'requires_action'
    returning * into j;
    if j.id is null then
        return false;
    end if;
    perform pg_notify('agentq_jobs', j.queue);
    perform agentq.emit(jsonb_build_object('type', 'job.queued', 'thread_id', j.thread_id, 'job_id', j.id, 'status', 'queued'));
    return true;
end $$;

-- The job a producer answers, locked, and checked to be waiting.
create or replace function agentq.parked_job(p_job_id bigint) returns agentq.jobs
language plpgsql as $$
declare
    j agentq.jobs;
    tid uuid;
begin
    if p_job_id is null then
        raise exception 'job_id must not be null' using errcode = '22004';
    end if;
    select jb.thread_id into tid from agentq.jobs jb where jb.id = p_job_id;
    perform 1 from agentq.threads where id = tid for no key update;
    select * into j from agentq.jobs jb where jb.id = p_job_id for update;
    if j.id is null then
        raise exception 'unknown job %', p_job_id using errcode = 'P0002';
    end if;
    if j.status <> 'requires_action' then
        raise exception 'job % is %, not waiting for tool outputs or approvals', p_job_id, j.status using errcode = '55000';
    end if;
    return j;
end $$;

-- Answers client tool calls of a parked job: outputs = [{"tool_call_id", "output", "is_error"?}].
-- Each id must be a call of that job (its thread and user) waiting for a client output, answered
-- once; the job is read under the caller's row-level security, so it is the caller's. When no call waits
-- any more, the job goes back to the queue and continues from where it stopped.
create or replace function agentq.submit_tool_outputs(job_id bigint, outputs jsonb) returns void
language plpgsql as $$
declare
    j agentq.jobs := agentq.parked_job(job_id);
    o jsonb;
    c agentq.tool_calls;
begin
    if outputs is null or jsonb_typeof(outputs) <> 'array' or jsonb_array_length(outputs) = 0 then
        raise exception 'outputs must be a non-empty JSON array of {"tool_call_id", "output"}' using errcode = '22023';
    end if;
    for o in select * from jsonb_array_elements(outputs) loop
        if jsonb_typeof(o) <> 'object' or jsonb_typeof(o->'tool_call_id') is distinct from 'string' or not o ? 'output' then
            raise exception 'each output must be {"tool_call_id": "...", "output": ...}, got %', o using errcode = '22023';
        end if;
        -- The cap on one tool output (README: Limits; Limits.toolOutputBytes in Swift).
        if octet_length((o->'output')::text) > 1048576 then
            raise exception 'the output of tool call "%" is % bytes, over the limit of 1048576', o->>'tool_call_id',
                octet_length((o->'output')::text) using errcode = '54000',
                hint = 'answer with a smaller output, e.g. a summary or a reference to where the data is';
        end if;
        select * into c from agentq.tool_calls tc where tc.job_id = j.id and tc.tool_call_id = o->>'tool_call_id';
        if c.job_id is null or c.thread_id is distinct from j.thread_id or c.user_id is distinct from j.user_id then
            raise exception 'job % has no tool call "%"', j.id, o->>'tool_call_id' using errcode = 'P0002';
        elsif c.status = 'done' then
            raise exception 'tool call "%" of job % was already answered', c.tool_call_id, j.id using errcode = '23505';
        elsif c.status <> 'awaiting_client' then
            raise exception 'tool call "%" of job % waits for an approval, not an output (use approve_tool_call)', c.tool_call_id, j.id
                using errcode = '55000';
        end if;
        perform agentq.emit_all(agentq.record_tool_results(j.id, jsonb_build_array(jsonb_build_object(
            'tool_call_id', c.tool_call_id, 'result', o->'output', 'is_error', coalesce((o->>'is_error')::boolean, false)))));
    end loop;
    perform agentq.resume_if_answered(j.id);
end $$;

-- Approves or denies a call to a tool with needs_approval. An approved call runs when the job
-- resumes; a denial reaches the model as an error result carrying the reason.
create or replace function agentq.approve_tool_call(job_id bigint, tool_call_id text, approved boolean, reason text default null)
returns void language plpgsql as $$
declare
    j agentq.jobs := agentq.parked_job(job_id);
    c agentq.tool_calls;
begin
    if approved is null then
        raise exception 'approved must be true or false' using errcode = '22004';
    end if;
    select * into c from agentq.tool_calls tc where tc.job_id = j.id and tc.tool_call_id = approve_tool_call.tool_call_id for update;
    if c.job_id is null or c.thread_id is distinct from j.thread_id or c.user_id is distinct from j.user_id then
        raise exception 'job % has no tool call "%"', j.id, tool_call_id using errcode = 'P0002';
    elsif c.status in ('done', 'approved') then
        raise exception 'tool call "%" of job % was already answered', c.tool_call_id, j.id using errcode = '23505';
    elsif c.status <> 'awaiting_approval' then
        raise exception 'tool call "%" of job % waits for a client output, not an approval (use submit_tool_outputs)', c.tool_call_id, j.id
            using errcode = '55000';
    end if;
    if approved then
        update agentq.tool_calls tc set status = 'approved' where tc.job_id = j.id and tc.tool_call_id = c.tool_call_id;
    else
        perform agentq.emit_all(agentq.record_tool_results(j.id, jsonb_build_array(jsonb_build_object(
            'tool_call_id', c.tool_call_id, 'is_error', true,
            'result', jsonb_build_object('error', 'denied' || coalesce(': ' || reason, ''))))));
    end if;
    perform agentq.resume_if_answered(j.id);
end $$;

-- A new generation on a thread ends the thread's parked jobs: their unanswered calls get error
-- results saying so (the Convex Agent's auto-deny), and the job ends `cancelled`, so the thread never
-- stays blocked behind a question nobody answers.
create or replace function agentq.supersede_parked(p_thread_id uuid) returns int
language plpgsql as $$
declare
    j agentq.jobs;
    n int := 0;
begin
    for j in select * from agentq.jobs jb where jb.thread_id = p_thread_id and jb.status = 'requires_action' for update loop
        perform agentq.emit_all(agentq.record_tool_results(j.id, (
            select coalesce(jsonb_agg(jsonb_build_object('tool_call_id', tc.tool_call_id, 'is_error', true,
                       'result', jsonb_build_object('error', case tc.status when 'awaiting_approval'
                           then 'denied: a new generation started on the thread before this call was approved'
                           else 'no output: a new generation started on the thread before the client answered' end))), '[]')
              from agentq.tool_calls tc where tc.job_id = j.id and tc.status in ('awaiting_client', 'awaiting_approval'))));
        update agentq.jobs set status = 'cancelled', finished_at = now(), blocked = false,
                               last_error = 'superseded: a new generation started on the thread with tool calls unanswered'
         where id = j.id;
        perform agentq.emit(jsonb_build_object('type', 'job.cancelled', 'thread_id', j.thread_id, 'job_id', j.id,
                                               'status', 'cancelled', 'text', 'superseded by a new generation'));
        n := n + 1;
    end loop;
    return n;
end $$;

-- The open tool calls of claimed jobs (approved calls to run, HTTP/Swift calls cut off by a crash,
-- calls still waiting), so a resumed attempt picks up where the last one stopped.
create or replace function agentq.open_tool_calls(p_job_ids bigint[])
returns table (job_id bigint, tool_call_id text, tool_name text, kind text, args text, status text)
language sql stable as $$
    select tc.job_id, tc.tool_call_id, tc.tool_name, tc.kind, tc.args::text, tc.status
      from agentq.tool_calls tc where tc.job_id = any (p_job_ids) and tc.status <> 'done'
     order by tc.job_id, tc.created_at, tc.tool_call_id
$$;

-- agentq.tool_calls has no foreign key to jobs (jobs are pruned in batches; a cascade per row would
-- cost more), so a statement trigger deletes the calls of the jobs a statement deleted (prune, purge
-- or a plain DELETE).
create or replace function agentq.jobs_delete_tool_calls() returns trigger
language plpgsql as $$
begin
    delete from agentq.tool_calls tc using old_rows o where tc.job_id = o.id;
    return null;
end $$;

drop trigger if exists jobs_delete_tool_calls on agentq.jobs;
create trigger jobs_delete_tool_calls after delete on agentq.jobs
    referencing old table as old_rows for each statement execute function agentq.jobs_delete_tool_calls();

insert into agentq.schema_migrations (version, name) values ('005', 'tools') on conflict (version) do nothing;
