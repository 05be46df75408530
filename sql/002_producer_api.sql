-- AgentQueue 002: the SQL API for producers (README.md "SQL API") and the events it sends ("Events").
--
-- Errors raised here (clients branch on the SQLSTATE; the message names the problem):
--   22023 invalid_parameter_value            malformed options, bad role/status, bad JSON shape, an option
--                                            over the owner's limits (check_limits), a message's user_id
--                                            that is not its thread's
--   42501 insufficient_privilege             a producer changing a job or tool call otherwise than the API
--                                            does, enqueueing an embed job, or naming another user
--   22004 null_value_not_allowed             a required argument is null
--   23505 unique_violation                   a plain INSERT with an idempotency_key already used
--                                            (generate() returns that key's job instead)
--   40001 serialization_failure              REPEATABLE READ / SERIALIZABLE producers only: a job of the
--                                            same thread ended while this transaction ran; retry it
--   40P01 deadlock_detected                  a transaction enqueueing on several threads out of thread-id
--                                            order met a worker locking them in order; retry it
--   54000 program_limit_exceeded             a prompt or message over the size limit
--   42704 undefined_object                   unknown agent
--   P0002 no_data_found                      unknown thread, message or job
--   55000 object_not_in_prerequisite_state   cancel of a finished job, or a job cancelled twice

-- Settings ----------------------------------------------------------------------------------------

create or replace function agentq.setting(p_key text) returns jsonb
language sql stable as $$ select value from agentq.settings where key = p_key $$;

-- Events ------------------------------------------------------------------------------------------

-- Channel names are capabilities: PostgreSQL lets any session LISTEN on any channel, so a thread's
-- channel is a random name kept in its row (visible only to who may see the thread), and the channel
-- of every thread's events is a random name in agentq.installation, which producers cannot read
-- (README "Roles and row-level security").

-- The NOTIFY channel of one thread's events; P0002 for a thread the caller cannot see.
create or replace function agentq.thread_channel(thread_id uuid) returns text
language plpgsql stable strict as $$
declare
    ch text;
begin
    select t.channel into ch from agentq.threads t where t.id = thread_channel.thread_id;
    if ch is null then
        raise exception 'thread % not found', thread_channel.thread_id using errcode = 'P0002';
    end if;
    return ch;
end $$;

-- The channel of every thread's events, for the roles that may read agentq.installation (the owner,
-- agentq_worker, agentq_reader); 42501 for the others.
create or replace function agentq.events_channel() returns text
language plpgsql stable as $$
begin
    if not has_table_privilege('agentq.installation', 'select') then
        raise exception 'only the owner, agentq_worker and agentq_reader may follow every thread'
            using errcode = '42501', hint = 'follow one thread at a time with agentq.listen(thread_id)';
    end if;
    return (select i.events_channel from agentq.installation i);
end $$;

-- A thread's channel is set when it is created and never changes.
create or replace function agentq.threads_channel() returns trigger
language plpgsql as $$
begin
    if tg_op = 'INSERT' then
        new.channel := 'agentq_t_' || replace(gen_random_uuid()::text, '-', '');
    else
        new.channel := old.channel;
    end if;
    return new;
end $$;
drop trigger if exists threads_channel on agentq.threads;
create trigger threads_channel before insert or update of channel on agentq.threads
    for each row execute function agentq.threads_channel();

-- Sends events, in order, each on its thread's channel and on the channel of every thread's events,
-- from the caller's transaction (so a listener never sees an event before the row is visible). An
-- event goes only to threads the caller can see, and on the all-threads channel only when the caller
-- may read agentq.installation. Payloads stay under 8000 bytes: a text that does not fit is dropped
-- and "truncated": true tells the reader to fetch the row; an event still too big (large tool
-- arguments in a result, say) keeps only its ids, type and status.
create or replace function agentq.emit_all(p_events jsonb[]) returns void
language plpgsql as $$
declare
    all_channel text;
begin
    if coalesce(cardinality(p_events), 0) = 0 then
        return;
    end if;
    if has_table_privilege('agentq.installation', 'select') then
        select i.events_channel into all_channel from agentq.installation i;
    end if;
    -- One statement: a volatile function in the select list is evaluated after the sort, row by
    -- row in its order (PostgreSQL 9.6 and later), so the notifications go out in event order.
    perform pg_notify(c.channel, e.payload)
      from (select x.n, (s.ev->>'thread_id')::uuid as thread_id,
                   case when octet_length(b.body) <= 7900 then b.body
                        when octet_length((s.ev - 'text')::text) <= 7880 then (s.ev - 'text' || '{"truncated": true}')::text
                        else (jsonb_strip_nulls(jsonb_build_object(
                                  'type', s.ev->'type', 'thread_id', s.ev->'thread_id', 'job_id', s.ev->'job_id',
                                  'message_id', s.ev->'message_id', 'stream_id', s.ev->'stream_id', 'seq', s.ev->'seq',
                                  'status', s.ev->'status')) || '{"truncated": true}')::text
                   end as payload
              from unnest(p_events) with ordinality as x(ev, n)
              cross join lateral (select jsonb_strip_nulls(x.ev) as ev) s
              cross join lateral (select s.ev::text as body) b) e
      left join agentq.threads t on t.id = e.thread_id
     cross join lateral (values (1, t.channel), (2, all_channel)) as c(k, channel)
     where c.channel is not null
     order by e.n, c.k;
end $$;

-- Sends one event (see emit_all).
create or replace function agentq.emit(p_event jsonb) returns void
language sql as $$ select agentq.emit_all(array[p_event]) $$;

-- LISTEN to one thread's events (or to every thread's with null, for the roles events_channel()
-- allows), and register this session so that producers send their enqueue-time events
-- (job.queued, message.created) while it listens.
create or replace function agentq.listen(thread_id uuid default null) returns void
language plpgsql as $$
declare
    ch text := case when listen.thread_id is null then agentq.events_channel() else agentq.thread_channel(listen.thread_id) end;
begin
    execute format('listen %I', ch);
    insert into agentq.listeners (channel, pid, backend_start)
    select ch, pid, backend_start from pg_stat_activity where pid = pg_backend_pid()
    on conflict (channel, pid) do update set backend_start = excluded.backend_start;
end $$;

create or replace function agentq.unlisten(thread_id uuid default null) returns void
language plpgsql as $$
declare
    ch text := case when unlisten.thread_id is null then agentq.events_channel() else agentq.thread_channel(unlisten.thread_id) end;
begin
    execute format('unlisten %I', ch);
    delete from agentq.listeners where channel = ch and pid = pg_backend_pid();
end $$;

-- True when a registered session listens to this channel (a thread's, which the caller read from
-- the thread's row) or to every thread. Security definer: a producer sees only its own rows of
-- agentq.listeners, and learns nothing here but whether to send.
create or replace function agentq.has_listeners(p_channel text) returns boolean
language sql stable security definer set search_path = pg_catalog, agentq, pg_temp as $$
    select exists (select 1 from agentq.listeners l
                    where l.channel = p_channel
                       or l.channel = (select i.events_channel from agentq.installation i))
$$;

-- Validation ----------------------------------------------------------------------------------------

-- True when the text parses as a timestamptz (pg_input_is_valid needs PostgreSQL 16; this works on 14).
create or replace function agentq.is_timestamptz(p_text text) returns boolean
language plpgsql immutable as $$
begin
    perform p_text::timestamptz;
    return true;
exception when others then
    return false;
end $$;

create or replace function agentq.raise_bad_option(p_key text, p_expected text, p_got jsonb) returns void
language plpgsql as $$
begin
    raise exception 'option "%" must be %, got %', p_key, p_expected, coalesce(p_got::text, 'null')
        using errcode = '22023';
end $$;

-- Checks a job's (or agent's) options object: known keys with values of the right type. Unknown keys
-- are errors, so a typo never silently changes nothing.
create or replace function agentq.check_options(p_options jsonb) returns jsonb
language plpgsql as $$
declare
    k text;
    v jsonb;
    n numeric;
    path text[];
    lo int;
    hi int;
    t text;
    allowed constant text[] := array['model', 'instructions', 'tools', 'max_steps', 'max_retries', 'context',
        'storage', 'schema', 'priority', 'run_at', 'max_attempts', 'idempotency_key', 'queue', 'concurrent',
        'temperature', 'stream', 'log_raw', 'prompt', 'timeout_ms', 'embed'];
begin
    if p_options is null then
        return '{}'::jsonb;
    end if;
    if jsonb_typeof(p_options) <> 'object' then
        raise exception 'options must be a JSON object, got %', jsonb_typeof(p_options) using errcode = '22023';
    end if;
    -- Nesting past 128 levels is refused (a worker reads no deeper: README, Limits). Counting the
    -- brackets of the text is cheap; only options with more than 128 of them are walked.
    t := p_options::text;
    if length(t) - length(translate(t, '[{', '')) > 128 and exists (
        with recursive walk(v, depth) as (
            select p_options, 1
            union all
            select c.value, w.depth + 1
              from walk w
              cross join lateral (select e.value from jsonb_each(case when jsonb_typeof(w.v) = 'object' then w.v end) e
                                  union all
                                  select a.value from jsonb_array_elements(case when jsonb_typeof(w.v) = 'array' then w.v end) a) c
             where w.depth <= 128 and jsonb_typeof(c.value) in ('object', 'array'))
        select 1 from walk where depth > 128) then
        raise exception 'options are nested more than 128 levels deep' using errcode = '22023';
    end if;
    for k, v in select * from jsonb_each(p_options) loop
        if not k = any (allowed) then
            raise exception 'unknown option "%"', k using errcode = '22023',
                hint = 'allowed options: ' || array_to_string(allowed, ', ');
        end if;
        case
            when k in ('model') then
                if jsonb_typeof(v) <> 'string' or v #>> '{}' !~ '^[a-z][a-z0-9_-]*:.+$' then
                    perform agentq.raise_bad_option(k, 'a "provider:model" string', v);
                end if;
            when k in ('instructions', 'prompt', 'idempotency_key') then
                if jsonb_typeof(v) <> 'string' then perform agentq.raise_bad_option(k, 'a string', v); end if;
            when k = 'queue' then
                if jsonb_typeof(v) <> 'string' or v #>> '{}' !~ '^[A-Za-z0-9_.-]{1,64}$' then
                    perform agentq.raise_bad_option(k, 'a queue name (letters, digits, _ . -)', v);
                end if;
            when k = 'tools' then
                if jsonb_typeof(v) <> 'array' or exists (select 1 from jsonb_array_elements(v) e where jsonb_typeof(e) <> 'string') then
                    perform agentq.raise_bad_option(k, 'an array of tool names', v);
                end if;
            when k in ('max_steps', 'max_retries', 'priority', 'max_attempts', 'timeout_ms') then
                if jsonb_typeof(v) <> 'number' or (v #>> '{}')::numeric <> trunc((v #>> '{}')::numeric) then
                    perform agentq.raise_bad_option(k, 'an integer', v);
                end if;
                n := (v #>> '{}')::numeric;   -- ranges are checked before any cast to int
                if k = 'max_steps' and (n < 1 or n > 100) then perform agentq.raise_bad_option(k, 'between 1 and 100', v); end if;
                if k = 'max_retries' and (n < 0 or n > 20) then perform agentq.raise_bad_option(k, 'between 0 and 20', v); end if;
                if k = 'max_attempts' and (n < 1 or n > 100) then perform agentq.raise_bad_option(k, 'between 1 and 100', v); end if;
                if k = 'timeout_ms' and (n < 1 or n > 86400000) then perform agentq.raise_bad_option(k, 'between 1 and 86400000 (a day)', v); end if;
                if k = 'priority' and abs(n) > 1000000 then perform agentq.raise_bad_option(k, 'between -1000000 and 1000000', v); end if;
            when k in ('concurrent', 'log_raw', 'embed') then
                if jsonb_typeof(v) <> 'boolean' then perform agentq.raise_bad_option(k, 'true or false', v); end if;
            when k = 'temperature' then
                if jsonb_typeof(v) <> 'number' then perform agentq.raise_bad_option(k, 'a number', v); end if;
            when k in ('context', 'stream', 'schema') then
                if jsonb_typeof(v) <> 'object' then perform agentq.raise_bad_option(k, 'a JSON object', v); end if;
                -- The numbers of the context: an integer past its range is refused (README: Limits);
                -- other values are ignored, as the worker and agentq.option_int read them.
                if k = 'context' then
                    for path, lo, hi in select * from (values ('{recent_messages}'::text[], 0, 10000), ('{search,limit}', 0, 100),
                            ('{search,message_range,before}', 0, 20), ('{search,message_range,after}', 0, 20)) r loop
                        if jsonb_typeof(v #> path) = 'number' and (v #>> path)::numeric = trunc((v #>> path)::numeric)
                            and (v #>> path)::numeric not between lo and hi then
                            perform agentq.raise_bad_option('context.' || array_to_string(path, '.'),
                                                            format('an integer between %s and %s', lo, hi), v #> path);
                        end if;
                    end loop;
                end if;
            when k = 'storage' then
                if jsonb_typeof(v) <> 'object' then perform agentq.raise_bad_option(k, 'a JSON object', v); end if;
                if v ? 'save_messages' and not (v->>'save_messages' = any (array['promptAndOutput', 'all', 'none'])) then
                    perform agentq.raise_bad_option('storage.save_messages', 'promptAndOutput, all or none', v->'save_messages');
                end if;
            when k = 'run_at' then
                if jsonb_typeof(v) <> 'string' or not agentq.is_timestamptz(v #>> '{}') then
                    perform agentq.raise_bad_option(k, 'an ISO 8601 timestamp string', v);
                end if;
            else null;
        end case;
    end loop;
    return p_options;
end $$;

-- An option read as the worker reads it: an integral JSON number, else `fallback` (a malformed value
-- must not fail a statement that serves other jobs too).
create or replace function agentq.option_int(v jsonb, fallback int) returns int
language sql immutable as $$
    select case when jsonb_typeof(v) = 'number' and (v #>> '{}')::numeric = trunc((v #>> '{}')::numeric)
                     and abs((v #>> '{}')::numeric) <= 1000000000
                then (v #>> '{}')::int else fallback end
$$;

-- A JSON boolean, else `fallback`.
create or replace function agentq.option_bool(v jsonb, fallback boolean) returns boolean
language sql immutable as $$
    select case when jsonb_typeof(v) = 'boolean' then (v #>> '{}')::boolean else fallback end
$$;

-- Limits ------------------------------------------------------------------------------------------

-- True when the current role is held to the producer's rules: every role that row-level security
-- restricts (it is active for agentq.jobs) except agentq_worker. The owner and superusers bypass row
-- security, so they are not; nor is a security definer function's body (it runs as the owner). The
-- triggers below keep a producer to the changes the producer API makes. Their WHEN clauses and the
-- per-row checks write this expression out: a trigger's WHEN does not inline a SQL function, and
-- calling one costs about 30 µs a row on every job the worker claims, heartbeats and finishes
-- (BENCHMARKS.md). HostileProducerTests check both sides: the producer held, the worker not.
create or replace function agentq.limited_session() returns boolean
language sql stable as $$
    select row_security_active('agentq.jobs') and not pg_has_role('agentq_worker', 'usage')
$$;

-- Checks what a producer asks of a job (or of a thread's agent_options) against the limits the owner
-- sets in agentq.settings: priority_min..priority_max, max_attempts_limit, allow_log_raw. 22023
-- names the limit and its setting.
create or replace function agentq.check_limits(p_priority int, p_max_attempts int, p_log_raw jsonb) returns void
language plpgsql stable as $$
declare
    lo int := coalesce((agentq.setting('priority_min') #>> '{}')::int, -100);
    hi int := coalesce((agentq.setting('priority_max') #>> '{}')::int, 100);
    most int := coalesce((agentq.setting('max_attempts_limit') #>> '{}')::int, 20);
begin
    if p_priority not between lo and hi then
        raise exception 'priority % is outside the range a producer may set (% to %)', p_priority, lo, hi
            using errcode = '22023', hint = 'the range is the settings priority_min and priority_max';
    end if;
    if p_max_attempts > most then
        raise exception 'max_attempts % is over the limit of %', p_max_attempts, most
            using errcode = '22023', hint = 'the limit is the setting max_attempts_limit';
    end if;
    if jsonb_typeof(p_log_raw) = 'boolean' and p_log_raw::text::boolean
       and not coalesce((agentq.setting('allow_log_raw') #>> '{}')::boolean, false) then
        raise exception 'log_raw is not allowed for producers' using errcode = '22023',
            hint = 'the owner allows it with the setting allow_log_raw, or sets log_raw in an agent''s options';
    end if;
end $$;

-- Threads -----------------------------------------------------------------------------------------

-- The user this session acts for: the `agentq.user_id` setting (`set agentq.user_id = 'u1'`, or
-- `set local` per transaction), null when unset. Row-level security (008_roles_grants.sql) keys on
-- it, and new threads and jobs default to it.
create or replace function agentq.current_user_id() returns text
language sql stable as $$ select nullif(current_setting('agentq.user_id', true), '') $$;

-- A thread's agent_options are checked as a job's options are (the worker merges them into every job
-- of the thread, after the enqueue), and a producer's are held to the limits. Threads without
-- agent_options cost no check.
create or replace function agentq.threads_check_limits() returns trigger
language plpgsql as $$
begin
    perform agentq.check_options(new.metadata->'agent_options');
    if row_security_active('agentq.jobs'::regclass) and not pg_has_role('agentq_worker', 'usage') then
        perform agentq.check_limits(0, 1, new.metadata #> '{agent_options,log_raw}');
    end if;
    return new;
end $$;
drop trigger if exists threads_check_limits on agentq.threads;
create trigger threads_check_limits before insert or update of metadata on agentq.threads
    for each row when (new.metadata ? 'agent_options') execute function agentq.threads_check_limits();

create or replace function agentq.create_thread(user_id text default null, title text default null,
                                                summary text default null, metadata jsonb default '{}')
returns uuid language plpgsql as $$
declare
    new_id uuid;
begin
    if metadata is not null and jsonb_typeof(metadata) <> 'object' then
        raise exception 'metadata must be a JSON object, got %', jsonb_typeof(metadata) using errcode = '22023';
    end if;
    insert into agentq.threads (user_id, title, summary, metadata)
    values (coalesce(create_thread.user_id, agentq.current_user_id()), create_thread.title, create_thread.summary, coalesce(create_thread.metadata, '{}'))
    returning id into new_id;
    return new_id;
end $$;

-- Changes the given fields; a null argument leaves its field as it is. metadata replaces the old object.
create or replace function agentq.update_thread(thread_id uuid, title text default null, summary text default null,
                                                status text default null, metadata jsonb default null)
returns agentq.threads language plpgsql as $$
declare
    t agentq.threads;
begin
    if thread_id is null then
        raise exception 'thread_id must not be null' using errcode = '22004';
    end if;
    if status is not null and status not in ('active', 'archived') then
        raise exception 'thread status must be active or archived, got "%"', status using errcode = '22023';
    end if;
    if metadata is not null and jsonb_typeof(metadata) <> 'object' then
        raise exception 'metadata must be a JSON object, got %', jsonb_typeof(metadata) using errcode = '22023';
    end if;
    update agentq.threads th
       set title = coalesce(update_thread.title, th.title),
           summary = coalesce(update_thread.summary, th.summary),
           status = coalesce(update_thread.status, th.status),
           metadata = coalesce(update_thread.metadata, th.metadata),
           updated_at = now()
     where th.id = update_thread.thread_id
    returning th.* into t;
    if t.id is null then
        raise exception 'unknown thread %', thread_id using errcode = 'P0002';
    end if;
    return t;
end $$;

-- Threads of one user (null: threads without a user), most recently active first; page with `before`.
create or replace function agentq.list_threads(user_id text, lim int default 20, before timestamptz default null)
returns setof agentq.threads language sql stable as $$
    select * from agentq.threads t
     where t.user_id is not distinct from list_threads.user_id
       and (list_threads.before is null or t.updated_at < list_threads.before)
     order by t.updated_at desc, t.id
     limit greatest(list_threads.lim, 0)
$$;

-- Deletes a thread with its messages, streams, deltas and embeddings; its unfinished jobs are cancelled.
create or replace function agentq.delete_thread(thread_id uuid) returns void
language plpgsql as $$
declare
    j record;
begin
    if thread_id is null then
        raise exception 'thread_id must not be null' using errcode = '22004';
    end if;
    perform 1 from agentq.threads t where t.id = delete_thread.thread_id for update;
    if not found then
        raise exception 'unknown thread %', thread_id using errcode = 'P0002';
    end if;
    for j in update agentq.jobs jb
                set status = 'cancelled', blocked = false, finished_at = now(), lease_expires_at = null,
                    cancel_requested = (jb.status = 'running'), last_error = 'thread deleted'
              where jb.thread_id = delete_thread.thread_id
                and jb.status in ('queued', 'running', 'requires_action')
             returning jb.id, jb.worker, jb.cancel_requested
    loop
        if j.cancel_requested then
            perform pg_notify('agentq_jobs', 'cancel:' || j.id);
        end if;
        perform agentq.emit(jsonb_build_object('type', 'job.cancelled', 'thread_id', thread_id, 'job_id', j.id,
                                               'status', 'cancelled'));
    end loop;
    delete from agentq.threads t where t.id = delete_thread.thread_id;
end $$;

-- Messages ----------------------------------------------------------------------------------------

-- Inserts a message at its place: a user or system message opens a new ord (step 0); an assistant
-- message answers the newest ord (next step). The thread row is locked by the ord allocation.
create or replace function agentq.insert_message(p_thread_id uuid, p_role text, p_text text, p_user_id text,
                                                 p_agent_name text, p_embed boolean, p_job_id bigint)
returns agentq.messages language plpgsql as $$
declare
    t agentq.threads;
    m agentq.messages;
    max_chars int := coalesce(agentq.setting('max_message_chars')::int, 1000000);
    new_ord int;
    new_step int;
begin
    if p_role is null then
        raise exception 'message role must not be null' using errcode = '22004';
    end if;
    if p_role not in ('system', 'user', 'assistant') then
        raise exception 'message role must be user, assistant or system, got "%"', p_role using errcode = '22023',
            hint = 'tool messages are saved by workers with their tool-call parts';
    end if;
    if p_text is null then
        raise exception 'message content must not be null' using errcode = '22004';
    end if;
    if length(p_text) > max_chars then
        raise exception 'message is % characters long, over the limit of %', length(p_text), max_chars
            using errcode = '54000', hint = 'the limit is the setting max_message_chars';
    end if;
    if p_role = 'assistant' then
        select * into t from agentq.threads where id = p_thread_id for no key update;
        if t.id is null then
            raise exception 'unknown thread %', p_thread_id using errcode = 'P0002';
        end if;
        if t.last_ord < 0 then
            update agentq.threads set last_ord = 0, updated_at = now() where id = p_thread_id;
            new_ord := 0;
            new_step := 0;
        else
            new_ord := t.last_ord;
            select coalesce(max(step), -1) + 1 into new_step from agentq.messages where thread_id = p_thread_id and ord = new_ord;
            update agentq.threads set updated_at = now() where id = p_thread_id;
        end if;
    else
        update agentq.threads set last_ord = last_ord + 1, updated_at = now() where id = p_thread_id
        returning * into t;
        if t.id is null then
            raise exception 'unknown thread %', p_thread_id using errcode = 'P0002';
        end if;
        new_ord := t.last_ord;
        new_step := 0;
    end if;
    -- A message is its thread's user's: user-wide search, context and embedding costs follow it.
    if p_user_id is not null and p_user_id is distinct from t.user_id then
        raise exception 'user_id "%" is not the user of thread %: a message belongs to its thread''s user', p_user_id, p_thread_id
            using errcode = '22023', hint = 'leave user_id null';
    end if;
    insert into agentq.messages (thread_id, user_id, agent_name, ord, step, role, content, text, embed, job_id)
    values (p_thread_id, t.user_id, p_agent_name, new_ord, new_step, p_role,
            jsonb_build_array(jsonb_build_object('type', 'text', 'text', p_text)), p_text, coalesce(p_embed, true), p_job_id)
    returning * into m;
    return m;
end $$;

-- Every message, however written, carries its thread's user (user-wide search and memory read
-- threads' ownership, but embeddings and embed jobs copy the message's user). A producer naming
-- another user gets 42501; other roles' rows simply take the thread's.
create or replace function agentq.messages_user() returns trigger
language plpgsql as $$
declare
    owner_id text;
begin
    select t.user_id into owner_id from agentq.threads t where t.id = new.thread_id;
    if new.user_id is distinct from owner_id and new.user_id is not null and agentq.limited_session() then
        raise exception 'user_id "%" is not the user of thread %: a message belongs to its thread''s user', new.user_id, new.thread_id
            using errcode = '42501';
    end if;
    new.user_id := owner_id;
    return new;
end $$;
drop trigger if exists messages_user on agentq.messages;
create trigger messages_user before insert or update of user_id, thread_id on agentq.messages
    for each row execute function agentq.messages_user();

create or replace function agentq.save_message(thread_id uuid, role text, content text, user_id text default null,
                                               agent_name text default null, embed boolean default true)
returns uuid language plpgsql as $$
declare
    m agentq.messages;
begin
    if thread_id is null then
        raise exception 'thread_id must not be null' using errcode = '22004';
    end if;
    m := agentq.insert_message(thread_id, role, content, user_id, agent_name, embed, null);
    if agentq.has_listeners((select t.channel from agentq.threads t where t.id = m.thread_id)) then
        perform agentq.emit(jsonb_build_object('type', 'message.created', 'thread_id', m.thread_id,
                                               'message_id', m.id, 'status', m.status));
    end if;
    return m.id;
end $$;

-- Messages of a thread, newest first. Pages hold whole turns: the oldest ord of a page is completed
-- even past `lim`; pass that ord as before_ord for the next page.
create or replace function agentq.list_messages(thread_id uuid, lim int default 100, before_ord int default null,
                                                statuses text[] default '{success,pending,failed}',
                                                include_tool boolean default true)
returns setof agentq.messages language sql stable as $$
    with page as (
        select m.ord from agentq.messages m
         where m.thread_id = list_messages.thread_id
           and (list_messages.before_ord is null or m.ord < list_messages.before_ord)
           and m.status = any (list_messages.statuses)
           and (list_messages.include_tool or not m.tool)
         order by m.ord desc, m.step desc
         limit greatest(list_messages.lim, 0)
    )
    select m.* from agentq.messages m
     where m.thread_id = list_messages.thread_id
       and m.ord >= (select min(ord) from page)
       and (list_messages.before_ord is null or m.ord < list_messages.before_ord)
       and m.status = any (list_messages.statuses)
       and (list_messages.include_tool or not m.tool)
     order by m.ord desc, m.step desc
$$;

-- Jobs ----------------------------------------------------------------------------------------------

-- Wakes the workers that wait for work on these queues (marked `waiting` by a claim that came back
-- short, and alive): one NOTIFY on agentq_jobs per queue. Only when one waits, since a NOTIFY
-- serialises the committing transaction's commit.
create or replace function agentq.wake_workers(p_queues text[]) returns void
language sql as $$
    select count(*) from (
        select pg_notify('agentq_jobs', q.queue)
          from (select distinct unnest(p_queues) as queue) q
         where exists (select 1 from agentq.worker_registry w
                        where w.waiting and q.queue = any (w.queues) and w.heartbeat_at > now() - interval '1 minute')) n
$$;

-- Every job goes through this trigger, so a plain INSERT INTO agentq.jobs behaves as generate():
-- options are checked and lifted into columns, the agent and thread are checked (a missing thread is
-- created), the prompt in options.prompt is saved as a user message, the job is blocked behind an
-- older active job of its thread, and events and a worker wake-up are sent when someone waits.
create or replace function agentq.jobs_before_insert() returns trigger
language plpgsql
set plan_cache_mode = force_generic_plan as $$   -- its checks are planned once per session, not per job
declare
    t agentq.threads;
    m agentq.messages;
    prompt text;
    max_chars int;
    save_mode text;
begin
    if new.status <> 'queued' or new.attempt <> 0 or new.worker is not null then
        raise exception 'a new job must be queued with attempt 0, got status %', new.status using errcode = '22023';
    end if;
    new.options := agentq.check_options(coalesce(new.options, '{}'));
    new.priority := coalesce((new.options->>'priority')::int, new.priority);
    new.run_at := coalesce((new.options->>'run_at')::timestamptz, new.run_at);
    new.max_attempts := coalesce((new.options->>'max_attempts')::int, new.max_attempts);
    new.queue := coalesce(new.options->>'queue', new.queue);
    new.concurrent := coalesce((new.options->>'concurrent')::boolean, new.concurrent);
    new.idempotency_key := coalesce(new.options->>'idempotency_key', new.idempotency_key);
    new.agent_name := coalesce(new.agent_name, 'default');
    new.blocked := false;
    -- A producer enqueues generations (embed jobs come from the owner's triggers), within the owner's
    -- limits, and names no state the worker would trust. Its thread and prompt are checked below
    -- under its row-level security, so it never names another user's.
    -- agentq.limited_session(), written out (see there).
    if row_security_active('agentq.jobs'::regclass) and not pg_has_role('agentq_worker', 'usage') then
        if new.kind <> 'generate' or new.message_ids is not null then
            raise exception 'a producer may enqueue generate jobs only, without message_ids' using errcode = '42501';
        end if;
        perform agentq.check_limits(new.priority, new.max_attempts, new.options->'log_raw');
        new.result := null;
        new.last_error := null;
        new.lease_expires_at := null;
        new.started_at := null;
        new.cancel_requested := false;
    end if;

    if new.kind <> 'generate' then
        return new;
    end if;

    perform 1 from agentq.agents a where a.name = new.agent_name;
    if not found then
        raise exception 'unknown agent "%"', new.agent_name using errcode = '42704',
            hint = 'agents are rows of agentq.agents';
    end if;

    if new.thread_id is null then
        insert into agentq.threads (user_id) values (coalesce(new.user_id, agentq.current_user_id())) returning * into t;
        new.thread_id := t.id;
    else
        select * into t from agentq.threads where id = new.thread_id for no key update;
        if t.id is null then
            raise exception 'unknown thread %', new.thread_id using errcode = 'P0002';
        end if;
    end if;
    new.user_id := coalesce(new.user_id, t.user_id);

    prompt := new.options->>'prompt';
    save_mode := coalesce(new.options #>> '{storage,save_messages}', 'promptAndOutput');
    if prompt is not null then
        if new.prompt_message_id is not null then
            raise exception 'pass either a prompt or prompt_message_id, not both' using errcode = '22023';
        end if;
        max_chars := coalesce(agentq.setting('max_prompt_chars')::int, 100000);
        if length(prompt) > max_chars then
            raise exception 'prompt is % characters long, over the limit of %', length(prompt), max_chars
                using errcode = '54000', hint = 'the limit is the setting max_prompt_chars';
        end if;
        if save_mode <> 'none' then
            m := agentq.insert_message(new.thread_id, 'user', prompt, new.user_id, null,
                                       coalesce((new.options->>'embed')::boolean, true), new.id);
            new.prompt_message_id := m.id;
            new.options := new.options - 'prompt';
        end if;
    elsif new.prompt_message_id is not null then
        perform 1 from agentq.messages pm where pm.id = new.prompt_message_id and pm.thread_id = new.thread_id;
        if not found then
            raise exception 'unknown message % in thread %', new.prompt_message_id, new.thread_id using errcode = 'P0002';
        end if;
    else
        -- No prompt: answer the thread's newest successful message.
        select pm.id into new.prompt_message_id from agentq.messages pm
         where pm.thread_id = new.thread_id and pm.status = 'success'
         order by pm.ord desc, pm.step desc limit 1;
        if new.prompt_message_id is null then
            raise exception 'thread % has no messages to answer: pass a prompt', new.thread_id using errcode = '22023';
        end if;
    end if;

    -- A job parked on tool outputs or approvals that nobody gave is superseded (agentq.supersede_parked,
    -- 005_tools.sql), so the thread does not stay blocked behind it.
    if exists (select 1 from agentq.jobs p where p.thread_id = new.thread_id and p.status = 'requires_action') then
        perform agentq.supersede_parked(new.thread_id);
    end if;

    -- One generation at a time per thread: queue behind the thread's head (the thread row is locked,
    -- so thread_seq follows the order in which enqueuers got the lock, which is their commit order).
    new.thread_seq := nextval('agentq.thread_seq');
    if not new.concurrent then
        new.blocked := exists (select 1 from agentq.jobs h
                                where h.thread_id = new.thread_id and h.status in ('queued', 'running', 'requires_action')
                                  and not h.blocked and not h.concurrent and h.kind = 'generate');
    end if;

    if agentq.has_listeners(t.channel) then
        if m.id is not null then
            perform agentq.emit(jsonb_build_object('type', 'message.created', 'thread_id', new.thread_id,
                                                   'message_id', m.id, 'job_id', new.id, 'status', 'success'));
        end if;
        perform agentq.emit(jsonb_build_object('type', 'job.queued', 'thread_id', new.thread_id, 'job_id', new.id,
                                               'message_id', new.prompt_message_id, 'status', 'queued'));
    end if;
    if not new.blocked and new.run_at <= now() then
        perform agentq.wake_workers(array[new.queue]);
    end if;
    return new;
end $$;

drop trigger if exists jobs_before_insert on agentq.jobs;
create trigger jobs_before_insert before insert on agentq.jobs
    for each row execute function agentq.jobs_before_insert();

-- A producer changes its jobs only as the producer API does (it runs with the producer's rights, so
-- row-level security alone would let a direct UPDATE rewrite any column the worker trusts: thread,
-- prompt, options, message_ids). Allowed: cancelling an unfinished job (cancel, delete_thread,
-- supersede_parked), asking a running one to stop, unblocking a queued one (unblock_next), and putting
-- a parked job whose calls are all answered back in the queue (resume_if_answered). Anything else
-- is 42501 naming the columns.
create or replace function agentq.jobs_before_update() returns trigger
language plpgsql as $$
declare
    changed text[];
    allowed text[];
    ok boolean;
begin
    select coalesce(array_agg(n.key order by n.key), '{}') into changed
      from jsonb_each(to_jsonb(new)) n join jsonb_each(to_jsonb(old)) o on o.key = n.key
     where n.value is distinct from o.value;
    if changed = '{}' then
        return new;
    end if;
    case
        when new.status = 'cancelled' and old.status in ('queued', 'running', 'requires_action') then
            allowed := array['status', 'blocked', 'finished_at', 'last_error', 'lease_expires_at', 'cancel_requested'];
            ok := not new.blocked;
        when new.status = 'queued' and old.status = 'requires_action' then
            allowed := array['status', 'run_at', 'attempt', 'max_attempts', 'result'];
            ok := new.run_at <= now() and new.result is null   -- the attempts as resume_if_answered (005) gives them back
                  and new.attempt = greatest(old.attempt - 1, 1)
                  and new.max_attempts = case when old.attempt > 1 then old.max_attempts else least(old.max_attempts + 1, 100) end
                  and not exists (select 1 from agentq.tool_calls tc
                                   where tc.job_id = old.id and tc.status in ('awaiting_client', 'awaiting_approval'));
        when new.status = 'running' and old.status = 'running' then
            allowed := array['cancel_requested'];
            ok := new.cancel_requested;
        when new.status = 'queued' and old.status = 'queued' then
            allowed := array['blocked'];
            ok := not new.blocked;
        else
            allowed := array['status'];
            ok := false;
    end case;
    if not (changed <@ allowed) or not ok then
        raise exception 'a producer may not change % of job % (status % to %)', array_to_string(changed, ', '), old.id,
                        old.status, new.status
            using errcode = '42501',
                  hint = 'jobs change through agentq.cancel, agentq.submit_tool_outputs and agentq.approve_tool_call';
    end if;
    return new;
end $$;

drop trigger if exists jobs_before_update on agentq.jobs;
create trigger jobs_before_update before update on agentq.jobs
    for each row when (row_security_active('agentq.jobs'::regclass) and not pg_has_role('agentq_worker', 'usage')) execute function agentq.jobs_before_update();

-- Saves the prompt as a user message (unless prompt_message_id names a saved one) and enqueues a
-- generate job, in the caller's transaction. Returns the job id. thread_id null creates a thread.
-- An options.idempotency_key already used returns that key's job and saves nothing.
create or replace function agentq.generate(thread_id uuid, prompt text default null, agent text default 'default',
                                           prompt_message_id uuid default null, options jsonb default '{}')
returns bigint language plpgsql as $$
declare
    opts jsonb := agentq.check_options(coalesce(options, '{}'));
    job_id bigint;
    uid text;
begin
    if opts ? 'prompt' then
        raise exception 'pass the prompt as the prompt argument, not in options' using errcode = '22023';
    end if;
    -- Keys are scoped by the user the job will carry (its thread's, or the session's for a new thread).
    if opts ? 'idempotency_key' then
        uid := case when generate.thread_id is null then agentq.current_user_id()
                    else (select t.user_id from agentq.threads t where t.id = generate.thread_id) end;
        perform pg_advisory_xact_lock(hashtext('agentq.idempotency:' || coalesce(uid, '') || ':' || (opts->>'idempotency_key')));
        if uid is null then   -- two statements, so each uses its index (jobs_idempotency_no_user, jobs_idempotency)
            select j.id into job_id from agentq.jobs j where j.idempotency_key = opts->>'idempotency_key' and j.user_id is null;
        else
            select j.id into job_id from agentq.jobs j where j.idempotency_key = opts->>'idempotency_key' and j.user_id = uid;
        end if;
        if job_id is not null then
            return job_id;
        end if;
    end if;
    if prompt is not null then
        opts := opts || jsonb_build_object('prompt', prompt);
    end if;
    insert into agentq.jobs (kind, thread_id, agent_name, prompt_message_id, options)
    values ('generate', generate.thread_id, coalesce(agent, 'default'), generate.prompt_message_id, opts)
    returning id into job_id;
    return job_id;
end $$;

-- generate() in object mode: the reply is JSON valid against `schema`.
create or replace function agentq.generate_object(thread_id uuid, prompt text, schema jsonb, agent text default 'default',
                                                  options jsonb default '{}')
returns bigint language plpgsql as $$
begin
    if schema is null then
        raise exception 'schema must not be null' using errcode = '22004';
    end if;
    if jsonb_typeof(schema) <> 'object' then
        raise exception 'schema must be a JSON Schema object, got %', coalesce(jsonb_typeof(schema), 'null')
            using errcode = '22023';
    end if;
    if schema ? 'type' and not (jsonb_typeof(schema->'type') in ('string', 'array')) then
        raise exception 'schema "type" must be a string or an array of strings' using errcode = '22023';
    end if;
    return agentq.generate(thread_id, prompt, agent, null, coalesce(options, '{}') || jsonb_build_object('schema', schema));
end $$;

-- Finds the next job of each thread and unblocks it, when the thread has no unblocked active job left.
-- Callers hold the threads' row locks and run it in a statement after the head's status change, and
-- touch the thread rows (agentq.touch_threads) so a REPEATABLE READ enqueuer that waited for the lock
-- gets a serialization failure instead of queueing behind a head it cannot see has ended.
create or replace function agentq.touch_threads(p_thread_ids uuid[]) returns void
language sql as $$ update agentq.threads set updated_at = now() where id = any (p_thread_ids) $$;

create or replace function agentq.unblock_next(p_thread_ids uuid[]) returns void
language sql as $$
    with unblocked as (
        update agentq.jobs j set blocked = false
          from (select n.id
                  from unnest(p_thread_ids) as t(id)
                  cross join lateral (select b.id from agentq.jobs b
                                       where b.thread_id = t.id and b.blocked and b.status = 'queued'
                                       order by b.thread_seq limit 1) n
                 where not exists (select 1 from agentq.jobs h
                                    where h.thread_id = t.id and h.status in ('queued', 'running', 'requires_action')
                                      and not h.blocked and not h.concurrent and h.kind = 'generate')) nx
         where j.id = nx.id
        returning j.queue, j.run_at)
    -- A job that became runnable wakes a waiting worker, as an enqueue does (jobs_before_insert):
    -- workers claim on freed slots only while their last claim came back full.
    select agentq.wake_workers(array(select distinct u.queue from unblocked u where u.run_at <= now()))
$$;

-- Cancels a job. Queued (or waiting) jobs are cancelled at once: returns true. A running job is
-- asked to stop; its worker ends the call within a second and the job ends `cancelled`: returns false.
create or replace function agentq.cancel(job_id bigint) returns boolean
language plpgsql as $$
declare
    tid uuid;
    j agentq.jobs;
begin
    if job_id is null then
        raise exception 'job_id must not be null' using errcode = '22004';
    end if;
    select jb.thread_id into tid from agentq.jobs jb where jb.id = cancel.job_id;
    if tid is not null then
        perform 1 from agentq.threads where id = tid for no key update;   -- lock order: thread, then job
    end if;
    select * into j from agentq.jobs jb where jb.id = cancel.job_id for update;
    if j.id is null then
        raise exception 'unknown job %', job_id using errcode = 'P0002';
    end if;
    if j.status = 'cancelled' or (j.status = 'running' and j.cancel_requested) then
        raise exception 'job % was already cancelled', job_id using errcode = '55000';
    elsif j.status in ('succeeded', 'failed') then
        raise exception 'job % already %; there is nothing to cancel', job_id, j.status using errcode = '55000';
    elsif j.status = 'running' then
        update agentq.jobs set cancel_requested = true where id = j.id;
        perform pg_notify('agentq_jobs', 'cancel:' || j.id);
        return false;
    end if;
    update agentq.jobs
       set status = 'cancelled', blocked = false, finished_at = now(), last_error = 'cancelled'
     where id = j.id;
    update agentq.messages set status = 'failed', error = 'cancelled', updated_at = now()
     where messages.job_id = j.id and status = 'pending';
    if not j.blocked and j.thread_id is not null then
        perform agentq.touch_threads(array[j.thread_id]);
        perform agentq.unblock_next(array[j.thread_id]);
    end if;
    perform agentq.emit(jsonb_build_object('type', 'job.cancelled', 'thread_id', j.thread_id, 'job_id', j.id,
                                           'status', 'cancelled'));
    return true;
end $$;

-- What a job produced: {"status", "text", "object", "error", "message_ids", "usage", "pending_tool_calls"}
-- (the calls a `requires_action` job waits on: [{"tool_call_id", "tool_name", "args", "kind"}]).
create or replace function agentq.job_result(job_id bigint) returns jsonb
language plpgsql stable as $$
declare
    j agentq.jobs;
begin
    if job_id is null then
        raise exception 'job_id must not be null' using errcode = '22004';
    end if;
    select * into j from agentq.jobs jb where jb.id = job_result.job_id;
    if j.id is null then
        raise exception 'unknown job % (finished jobs are pruned after the job_retention setting)', job_id
            using errcode = 'P0002';
    end if;
    return jsonb_build_object(
        'status', j.status,
        'text', j.result->'text',
        'object', j.result->'object',
        'error', case when j.status in ('failed', 'cancelled') then j.last_error end,
        'message_ids', coalesce(j.result->'message_ids', '[]'::jsonb),
        'usage', j.result->'usage',
        'pending_tool_calls', j.result->'pending_tool_calls');
end $$;

-- Agents' options are checked like a job's.
create or replace function agentq.agents_check() returns trigger
language plpgsql as $$
begin
    perform agentq.check_options(new.options);
    new.updated_at := now();
    return new;
end $$;
drop trigger if exists agents_check on agentq.agents;
create trigger agents_check before insert or update on agentq.agents
    for each row execute function agentq.agents_check();

-- Workers keep agents, tools and providers in memory (README "How the queue works"); a change to
-- any of them tells every worker to read them again: `catalog` on agentq_jobs, once per statement.
create or replace function agentq.catalog_changed() returns trigger
language plpgsql as $$
begin
    perform pg_notify('agentq_jobs', 'catalog');
    return null;
end $$;
drop trigger if exists agents_catalog_changed on agentq.agents;
create trigger agents_catalog_changed after insert or update or delete or truncate on agentq.agents
    for each statement execute function agentq.catalog_changed();
drop trigger if exists tools_catalog_changed on agentq.tools;
create trigger tools_catalog_changed after insert or update or delete or truncate on agentq.tools
    for each statement execute function agentq.catalog_changed();
drop trigger if exists providers_catalog_changed on agentq.providers;
create trigger providers_catalog_changed after insert or update or delete or truncate on agentq.providers
    for each statement execute function agentq.catalog_changed();

insert into agentq.schema_migrations (version, name) values ('002', 'producer_api') on conflict (version) do nothing;
