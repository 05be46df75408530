-- AgentQueue 006: search and memory (README.md "Memory: embeddings, search, context").
--
-- Search: a tsvector kept with each message, one HNSW (cosine) index per embedding dimension in use,
-- and search_messages fusing text and vector hits by reciprocal rank fusion (k = 60) in one
-- statement. Vectors of two models or two dimensions are never compared: every vector query filters
-- on both.
-- Memory: messages are embedded by `embed` jobs enqueued in the transaction that saves them; a
-- generation's context can hold search hits with their neighbours; embeddings are managed from SQL
-- (list, re-embed with a new model, delete, hide from search).
-- The columns and indexes (messages.tsv, messages.search_hidden, jobs.message_ids, the embeddings
-- indexes) and the settings (text_search_config, embed_*) are in 001_schema.sql.

-- Search ------------------------------------------------------------------------------------------

-- The configuration in use (a regconfig name from the setting).
create or replace function agentq.text_search_config() returns regconfig
language sql stable as $$ select coalesce(agentq.setting('text_search_config') #>> '{}', 'english')::regconfig $$;

-- Keeps `tsv` in step with the text (the first 100,000 characters); tool messages have none.
create or replace function agentq.messages_tsv() returns trigger
language plpgsql as $$
begin
    new.tsv := case when new.tool or new.text is null or new.text = '' then null
                    else to_tsvector(agentq.text_search_config(), left(new.text, 100000)) end;
    return new;
end $$;

drop trigger if exists messages_tsv on agentq.messages;
create trigger messages_tsv before insert or update of text, tool on agentq.messages
    for each row execute function agentq.messages_tsv();

-- Recomputes every tsvector, after text_search_config changes. Returns the messages updated.
create or replace function agentq.reindex_text_search() returns bigint
language plpgsql as $$
declare
    n bigint;
begin
    update agentq.messages set text = text where not tool and text is not null and text <> '';
    get diagnostics n = row_count;
    return n;
end $$;

-- The HNSW index of one dimension: a partial expression index per dimension (`vector(N)` up to 2,000
-- dimensions, `halfvec(N)` up to 4,000).
create or replace function agentq.vector_index_name(p_dims int) returns text
language sql immutable as $$ select 'embeddings_hnsw_' || p_dims $$;

-- The type a dimension is indexed and compared as: HNSW indexes `vector` up to 2,000 dimensions.
create or replace function agentq.vector_type(p_dims int) returns text
language sql immutable as $$ select case when p_dims > 2000 then 'halfvec' else 'vector' end $$;

-- Creates the HNSW index of a dimension met for the first time; false when it exists. A worker role
-- saves the first vector of a dimension, but only the table owner may create an index, so the
-- function (a fixed CREATE INDEX on an integer) runs with its owner's rights (security definer). Its
-- search_path is pinned like every security definer function's here (pg_catalog, agentq, pg_temp
-- last): pgvector's schema (public by default, writable by everyone on PostgreSQL 14 and on
-- upgraded clusters) is never on it, so an overload planted there cannot run as the owner. The
-- vector type and operator class are named with the schema the extension is installed in. The
-- worker may call it (save_embeddings); the producer may not.
create or replace function agentq.ensure_vector_index(p_dims int) returns boolean
language plpgsql security definer set search_path = pg_catalog, agentq, pg_temp as $$
declare
    ext text := (select quote_ident(n.nspname) from pg_extension e join pg_namespace n on n.oid = e.extnamespace
                  where e.extname = 'vector');
begin
    if to_regclass('agentq.' || agentq.vector_index_name(p_dims)) is not null then
        return false;
    end if;
    if p_dims > 4000 then
        raise exception 'embeddings of % dimensions cannot be indexed (at most 4000)', p_dims using errcode = '22023';
    end if;
    execute format('create index if not exists %I on agentq.embeddings using hnsw ((embedding::%s.%s(%s)) %s.%s_cosine_ops) where dims = %s',
                   agentq.vector_index_name(p_dims), ext, agentq.vector_type(p_dims), p_dims, ext, agentq.vector_type(p_dims), p_dims);
    return true;
end $$;

-- Saves vectors (computed by embed jobs, or elsewhere): [{"message_id", "model", "embedding"}], each
-- taking the message's thread and that thread's user.
-- Creates the index of a dimension met for the first time (an index cannot be created from a
-- trigger of the table it indexes, so direct INSERTs of a new dimension call ensure_vector_index).
-- A vector replaces the message's earlier one of the same model. Returns the vectors saved.
create or replace function agentq.save_embeddings(p_rows jsonb) returns int
language plpgsql as $$
declare
    n int;
begin
    if p_rows is null or jsonb_typeof(p_rows) <> 'array' then
        raise exception 'embeddings must be a JSON array of {"message_id", "model", "embedding"}' using errcode = '22023';
    end if;
    perform agentq.ensure_vector_index(d)
       from (select distinct jsonb_array_length(x->'embedding') as d from jsonb_array_elements(p_rows) x
              where jsonb_typeof(x->'embedding') = 'array') s;
    insert into agentq.embeddings (message_id, model, dims, thread_id, user_id, embedding)
    select m.id, r.model, vector_dims(r.embedding::text::vector), m.thread_id,
           t.user_id, r.embedding::text::vector
      from jsonb_to_recordset(p_rows) as r(message_id uuid, model text, embedding jsonb)
      join agentq.messages m on m.id = r.message_id
      join agentq.threads t on t.id = m.thread_id
    on conflict (message_id, model) do update
       set embedding = excluded.embedding, dims = excluded.dims, created_at = now();
    get diagnostics n = row_count;
    return n;
end $$;

-- Messages matching `query` (text search) and/or near `query_embedding` (vector search, among the
-- vectors of `model` and of that dimension), in one thread or across a user's threads, ranked by
-- reciprocal rank fusion: score = sum over the legs of 1 / (60 + rank). With only a query it is
-- text search, with only an embedding vector search. Ties, in each leg's ranks and in the result,
-- go to the newer message (created_at, ord, step descending, then id), so equal scores come back in
-- the same order every time. Without `model`, a vector search takes the thread's agent's
-- embedding_model (the agent of the thread's newest message that names one, else `default`; a
-- user-wide search takes `default`'s) if it has vectors of the query's dimension where the search
-- looks, else the one model that has; with several such models, or none and no agent model, it
-- refuses (22004, naming the candidates). Successful, non-tool messages only; a message
-- with search_hidden is found in its thread but not user-wide. User-wide means the threads the user
-- owns (threads.user_id), whatever a row's own user_id says. Runs as its caller: row-level security
-- applies (the worker, searching for a generation's context, sees every row, so ownership is the
-- filter).
do $$ begin
    if to_regtype('agentq.search_hit') is null then
        create type agentq.search_hit as (message_id uuid, thread_id uuid, ord int, step int, role text, text text,
                                          created_at timestamptz, score double precision, text_rank int, vector_rank int);
    end if;
end $$;

create or replace function agentq.search_messages(query text, thread_id uuid default null, user_id text default null,
                                       lim int default 10, query_embedding vector default null, model text default null)
returns setof agentq.search_hit
language plpgsql stable as $$
declare
    dims int := vector_dims(query_embedding);
    use_text boolean := coalesce(btrim(query), '') <> '';
    use_vector boolean := query_embedding is not null;
    emb_model text := model;
    agent_model text;
    candidates text[];
    leg int;
begin
    if thread_id is null and user_id is null then
        raise exception 'search needs a thread_id or a user_id' using errcode = '22004';
    end if;
    if not use_text and not use_vector then
        raise exception 'search needs a query text, a query_embedding, or both' using errcode = '22004';
    end if;
    if lim is null or lim < 1 or lim > 1000 then
        raise exception 'lim must be between 1 and 1000, got %', lim using errcode = '22023';
    end if;
    if use_vector and emb_model is null then
        select a.embedding_model into agent_model
          from agentq.agents a
         where a.name = coalesce((select m.agent_name from agentq.messages m
                                   where m.thread_id = search_messages.thread_id and m.agent_name is not null
                                   order by m.ord desc, m.step desc limit 1), 'default');
        -- The models with vectors of this dimension where the search looks (as its vector leg filters).
        select coalesce(array_agg(distinct e.model order by e.model), '{}') into candidates
          from agentq.embeddings e
         where e.dims = vector_dims(query_embedding)
           and (search_messages.thread_id is null or e.thread_id = search_messages.thread_id)
           and (search_messages.thread_id is not null or exists (
                    select 1 from agentq.threads th where th.id = e.thread_id and th.user_id = search_messages.user_id));
        emb_model := case when agent_model = any (candidates) then agent_model
                          when cardinality(candidates) = 1 then candidates[1]
                          when cardinality(candidates) = 0 then agent_model end;
        if emb_model is null and cardinality(candidates) > 1 then
            raise exception 'query_embedding has % dimensions and % embedding models have vectors of that size here: %',
                dims, cardinality(candidates), (select string_agg(quote_literal(c), ', ') from unnest(candidates) c)
                using errcode = '22004', hint = 'pass model => one of them';
        elsif emb_model is null then
            raise exception 'no embedding model has vectors of % dimensions here and the agent has no embedding_model', dims
                using errcode = '22004', hint = 'pass model => ''provider:model''';
        end if;
    end if;
    leg := lim * 3;
    if use_vector then
        -- A filtered HNSW scan keeps going until enough rows pass the filter (pgvector 0.8).
        perform set_config('hnsw.iterative_scan', 'relaxed_order', true);
        perform set_config('hnsw.ef_search', greatest(40, leg)::text, true);
    end if;
    -- The vector leg takes its nearest rows in the index's order alone (more sort keys would keep the
    -- HNSW index out), then ranks equal distances by the message, as the text leg does.
    return query execute format($q$
        with t as (
            select s.id, row_number() over (order by s.rank desc, s.created_at desc, s.ord desc, s.step desc, s.id)::int as r
              from (select m.id, ts_rank_cd(m.tsv, q.q) as rank, m.created_at, m.ord, m.step
                      from agentq.messages m, (select websearch_to_tsquery(agentq.text_search_config(), $1) as q) q
                     where $7 and m.tsv @@ q.q and m.status = 'success' and not m.tool
                       and ($2::uuid is null or m.thread_id = $2)
                       and ($2::uuid is not null or (not m.search_hidden and exists (
                                select 1 from agentq.threads th where th.id = m.thread_id and th.user_id = $3)))
                     order by rank desc, m.created_at desc, m.ord desc, m.step desc, m.id limit $5) s),
        v as materialized (
            select s.id, row_number() over (order by s.dist, m.created_at desc, m.ord desc, m.step desc, s.id)::int as r
              from (select e.message_id as id, e.embedding::%1$s(%2$s) <=> $4::%1$s(%2$s) as dist
                      from agentq.embeddings e
                     where $8 and e.dims = %2$s and e.model = $6
                       and ($2::uuid is null or e.thread_id = $2)
                       and ($2::uuid is not null or exists (
                                select 1 from agentq.threads th where th.id = e.thread_id and th.user_id = $3))
                     order by dist limit $5) s
              join agentq.messages m on m.id = s.id),
        fused as (
            select coalesce(t.id, v.id) as id, t.r as tr, v.r as vr,
                   coalesce(1.0 / (60 + t.r), 0) + coalesce(1.0 / (60 + v.r), 0) as score
              from t full outer join v on v.id = t.id)
        select m.id, m.thread_id, m.ord, m.step, m.role, m.text, m.created_at, f.score::double precision, f.tr, f.vr
          from fused f join agentq.messages m on m.id = f.id
         where m.status = 'success' and not m.tool and ($2::uuid is not null or not m.search_hidden)
         order by f.score desc, m.created_at desc, m.ord desc, m.step desc, m.id
         limit $9
        $q$, agentq.vector_type(coalesce(dims, 1)), coalesce(dims, 1))
    using query, thread_id, user_id, query_embedding, leg, emb_model, use_text, use_vector, lim;
end $$;

-- Embed jobs ---------------------------------------------------------------------------------------

-- Whether a message is worth a vector: successful, not a tool call or result, with text, and not
-- saved with embed => false.
create or replace function agentq.embeddable(m agentq.messages) returns boolean
language sql immutable as $$
    select m.status = 'success' and not m.tool and m.embed and coalesce(m.text, '') <> ''
$$;

-- Enqueues embed jobs for the embeddable messages among `p_message_ids`: one job per model and per
-- `embed_batch_size` messages, in the caller's transaction. `p_model` null: each message's agent's
-- embedding_model (the `default` agent's for messages without an agent); messages whose agent has
-- none are skipped. Messages that already have a vector of the model, or (p_check_waiting) wait in a
-- queued embed job, are skipped too, so calling it again resumes. New messages cannot wait in a job
-- yet, so the insert triggers skip that check. Returns the jobs enqueued.
create or replace function agentq.enqueue_embed_jobs(p_message_ids uuid[], p_model text default null,
                                                     p_priority int default 10, p_check_waiting boolean default true)
returns int language plpgsql as $$
declare
    batch int := greatest(1, coalesce((agentq.setting('embed_batch_size') #>> '{}')::int, 128));
    n int;
begin
    if cardinality(p_message_ids) is null or cardinality(p_message_ids) = 0 then
        return 0;
    end if;
    with wanted as (
        select m.id, m.thread_id, m.user_id, m.agent_name, m.ord, m.step, coalesce(p_model, a.embedding_model) as model
          from agentq.messages m
          left join agentq.agents a on a.name = coalesce(m.agent_name, 'default')
         where m.id = any (p_message_ids) and agentq.embeddable(m)
           and coalesce(p_model, a.embedding_model) is not null),
    waiting as (
        select distinct x.id, j.options->>'model' as model
          from agentq.jobs j cross join lateral unnest(j.message_ids) as x(id)
         where p_check_waiting
           and j.kind = 'embed' and j.status = 'queued'   -- a running job may have read its texts already
           and j.message_ids && p_message_ids),            -- through jobs_embed_waiting
    todo as (
        select w.*, (row_number() over (partition by w.model order by w.thread_id, w.ord, w.step) - 1) / batch as chunk
          from wanted w
         where not exists (select 1 from agentq.embeddings e where e.message_id = w.id and e.model = w.model)
           and not exists (select 1 from waiting q where q.id = w.id and q.model = w.model)),
    grouped as (
        select t.model, t.chunk, array_agg(t.id order by t.thread_id, t.ord, t.step) as ids,
               case when count(distinct t.thread_id) = 1 then (array_agg(t.thread_id))[1] end as thread_id,
               case when count(distinct coalesce(t.user_id, '')) = 1 then (array_agg(t.user_id))[1] end as user_id,
               case when count(distinct coalesce(t.agent_name, 'default')) = 1 then (array_agg(coalesce(t.agent_name, 'default')))[1] end as agent_name
          from todo t group by t.model, t.chunk)
    insert into agentq.jobs (kind, queue, thread_id, user_id, agent_name, priority, options, message_ids)
    select 'embed', coalesce(agentq.setting('embed_queue') #>> '{}', 'default'), g.thread_id, g.user_id, g.agent_name,
           p_priority, jsonb_build_object('model', g.model), g.ids
      from grouped g order by g.model, g.chunk;
    get diagnostics n = row_count;
    return n;
end $$;

-- Whether any agent embeds (the message triggers cost nothing more when none does).
create or replace function agentq.any_embedding_model() returns boolean
language sql stable as $$ select exists (select 1 from agentq.agents where embedding_model is not null) $$;

-- The three triggers below run with their owner's rights (security definer): they enqueue embed jobs
-- (a producer may not) and a message edit drops vectors the editor cannot delete itself. They act
-- only on the rows of the statement that fired them, and their search_path is pinned (see
-- ensure_vector_index).

-- New messages: one statement's embeddable rows become embed jobs (a batch of replies finished
-- together is embedded in one request). A prompt saved by `generate` (no agent, the job's id) is
-- left to the job's trigger below, which knows the job's agent.
create or replace function agentq.messages_embed_on_insert() returns trigger
language plpgsql security definer set search_path = pg_catalog, agentq, pg_temp as $$
begin
    if agentq.any_embedding_model() then
        perform agentq.enqueue_embed_jobs(array(select n.id from new_rows n
                                                 where agentq.embeddable(n) and not (n.agent_name is null and n.job_id is not null)),
                                          null, 10, false);
    end if;
    return null;
end $$;

-- A generate job's prompt, saved with it, is embedded with the job's agent's model; when that agent
-- embeds, the prompt takes its name, so a later edit or re-embed finds the same model.
create or replace function agentq.jobs_embed_prompt() returns trigger
language plpgsql security definer set search_path = pg_catalog, agentq, pg_temp as $$
declare
    model text;
begin
    select a.embedding_model into model from agentq.agents a where a.name = new.agent_name;
    if model is not null then
        update agentq.messages m set agent_name = new.agent_name
         where m.id = new.prompt_message_id and m.job_id = new.id and m.agent_name is null;
        if found then
            perform agentq.enqueue_embed_jobs(array[new.prompt_message_id], model, 10, false);
        end if;
    end if;
    return null;
end $$;

drop trigger if exists jobs_embed_prompt on agentq.jobs;
create trigger jobs_embed_prompt after insert on agentq.jobs
    for each row when (new.kind = 'generate' and new.prompt_message_id is not null)
    execute function agentq.jobs_embed_prompt();

-- Changed messages: a reply that turns success is embedded; a message whose text changed is
-- embedded again; one that failed, or is no longer embeddable, loses its vectors (so search never
-- returns it).
create or replace function agentq.messages_embed_on_update() returns trigger
language plpgsql security definer set search_path = pg_catalog, agentq, pg_temp as $$
begin
    if exists (select 1 from new_rows n join old_rows o on o.id = n.id
                where not agentq.embeddable(n) or n.text is distinct from o.text) then
        delete from agentq.embeddings e
         using new_rows n join old_rows o on o.id = n.id
         where e.message_id = n.id and (not agentq.embeddable(n) or n.text is distinct from o.text);
    end if;
    if agentq.any_embedding_model() then
        perform agentq.enqueue_embed_jobs(array(
            select n.id from new_rows n join old_rows o on o.id = n.id
             where agentq.embeddable(n) and (not agentq.embeddable(o) or n.text is distinct from o.text)));
    end if;
    return null;
end $$;

drop trigger if exists messages_embed_insert on agentq.messages;
create trigger messages_embed_insert after insert on agentq.messages
    referencing new table as new_rows for each statement execute function agentq.messages_embed_on_insert();
drop trigger if exists messages_embed_update on agentq.messages;
create trigger messages_embed_update after update on agentq.messages
    referencing old table as old_rows new table as new_rows for each statement execute function agentq.messages_embed_on_update();

-- What the worker embeds for claimed embed jobs: the messages still embeddable and still without a
-- vector of the job's model, cut to `embed_max_chars`, in the job's order, with the md5 of the input
-- (save_job_embeddings skips a message whose text changed in between).
create or replace function agentq.embed_inputs(p_job_ids bigint[])
returns table (job_id bigint, model text, message_id uuid, input text, input_md5 text)
language sql stable as $$
    select j.id, j.options->>'model', m.id, i.input, md5(i.input)
      from agentq.jobs j
      cross join lateral unnest(j.message_ids) with ordinality as x(id, n)
      join agentq.messages m on m.id = x.id
      cross join lateral (select left(m.text, coalesce((agentq.setting('embed_max_chars') #>> '{}')::int, 10000)) as input) i
     where j.id = any (p_job_ids) and j.kind = 'embed' and agentq.embeddable(m)
       and not exists (select 1 from agentq.embeddings e where e.message_id = m.id and e.model = j.options->>'model')
     order by j.id, x.n
$$;

-- Saves the vectors an embed job computed, if the worker still holds the job (attempt fencing).
-- Messages that failed or changed meanwhile are skipped. Returns the vectors saved, null when the
-- job was lost.
create or replace function agentq.save_job_embeddings(p_worker text, p_job_id bigint, p_attempt int, p_rows jsonb)
returns int language plpgsql as $$
declare
    max_chars int := coalesce((agentq.setting('embed_max_chars') #>> '{}')::int, 10000);
    still jsonb;
    changed uuid[];
    changed_model text;
begin
    perform 1 from agentq.jobs j
     where j.id = p_job_id and j.status = 'running' and j.worker = p_worker and j.attempt = p_attempt;
    if not found then
        return null;
    end if;
    -- FOR SHARE waits for an edit in flight and then reads the edited row, so a vector of the old
    -- text is never saved over the edit's deletion.
    with checked as (
        select r.x, m.id, agentq.embeddable(m) as ok, md5(left(m.text, max_chars)) = r.x->>'input_md5' as same
          from jsonb_array_elements(p_rows) r(x)
          join agentq.messages m on m.id = (r.x->>'message_id')::uuid
         for share of m)
    select coalesce(jsonb_agg(x) filter (where ok and same), '[]'),
           coalesce(array_agg(id) filter (where ok and not same), '{}'), min(x->>'model')
      into still, changed, changed_model from checked;
    -- A text that changed after it was read is embedded again (its edit may have found this job
    -- still queued and enqueued nothing).
    if cardinality(changed) > 0 then
        perform agentq.enqueue_embed_jobs(changed, changed_model);
    end if;
    return agentq.save_embeddings(still);
end $$;

-- What a generation needs to embed its prompt for a vector search: the saved vector of `p_model`,
-- else the text to embed (cut to embed_max_chars) with its md5 and whether the prompt may be saved
-- with a vector (embeddable: not saved with embed => false).
create or replace function agentq.prompt_embedding(p_message_id uuid, p_model text)
returns table (embedding text, input text, input_md5 text, embeddable boolean)
language sql stable as $$
    select e.embedding::text, i.input, md5(i.input), agentq.embeddable(m)
      from agentq.messages m
      cross join lateral (select left(m.text, coalesce((agentq.setting('embed_max_chars') #>> '{}')::int, 10000)) as input) i
      left join agentq.embeddings e on e.message_id = m.id and e.model = p_model
     where m.id = p_message_id
$$;

-- Embedding management ----------------------------------------------------------------------------

-- Vectors per model and dimension.
create or replace view agentq.embedding_stats as
select e.model, e.dims, count(*) as vectors, count(distinct e.thread_id) as threads,
       count(distinct e.user_id) as users, min(e.created_at) as first_at, max(e.created_at) as last_at
  from agentq.embeddings e group by e.model, e.dims;

-- One page of a model's vectors (optionally of one `thread`), in message_id order: pass the last
-- message_id of a page as `after` for the next.
create or replace function agentq.list_embeddings(model text, thread uuid default null, after uuid default null,
                                                  lim int default 100)
returns table (message_id uuid, thread_id uuid, user_id text, dims int, embedding vector, created_at timestamptz)
language plpgsql stable as $$
begin
    if model is null then
        raise exception 'model must not be null' using errcode = '22004';
    end if;
    if lim is null or lim < 1 or lim > 10000 then
        raise exception 'lim must be between 1 and 10000, got %', lim using errcode = '22023';
    end if;
    return query
    select e.message_id, e.thread_id, e.user_id, e.dims, e.embedding, e.created_at
      from agentq.embeddings e
     where e.model = list_embeddings.model
       and (thread is null or e.thread_id = thread)
       and (after is null or e.message_id > after)
     order by e.message_id limit lim;
end $$;

-- Embeds with `model` every embeddable message (of a thread, of a user, or all) that has no vector
-- of it yet, through embed jobs (priority 20: after live embeds). The old model's vectors stay until
-- deleted, so search keeps working while the jobs run; call it again to resume. Returns the jobs
-- enqueued.
create or replace function agentq.reembed(model text, thread_id uuid default null, user_id text default null)
returns int language plpgsql as $$
begin
    if model is null or model !~ '^[a-z][a-z0-9_-]*:.+$' then
        raise exception 'model must be a "provider:model" string, got %', coalesce(quote_literal(model), 'null')
            using errcode = '22023';
    end if;
    if reembed.thread_id is not null and not exists (select 1 from agentq.threads t where t.id = reembed.thread_id) then
        raise exception 'unknown thread %', reembed.thread_id using errcode = 'P0002';
    end if;
    return agentq.enqueue_embed_jobs(array(
        select m.id from agentq.messages m
         where agentq.embeddable(m)
           and (reembed.thread_id is null or m.thread_id = reembed.thread_id)
           and (reembed.user_id is null or m.user_id = reembed.user_id)
           and not exists (select 1 from agentq.embeddings e where e.message_id = m.id and e.model = reembed.model)),
        model, 20);
end $$;

-- Deletes vectors of a model, a thread and/or a user (at least one filter). Returns how many.
create or replace function agentq.delete_embeddings(model text default null, thread_id uuid default null,
                                                    user_id text default null)
returns bigint language plpgsql as $$
declare
    n bigint;
begin
    if model is null and thread_id is null and user_id is null then
        raise exception 'delete_embeddings needs a model, a thread_id or a user_id' using errcode = '22004';
    end if;
    delete from agentq.embeddings e
     where (delete_embeddings.model is null or e.model = delete_embeddings.model)
       and (delete_embeddings.thread_id is null or e.thread_id = delete_embeddings.thread_id)
       and (delete_embeddings.user_id is null or e.user_id = delete_embeddings.user_id);
    get diagnostics n = row_count;
    return n;
end $$;

-- Hides a message from user-wide (cross-thread) search, or shows it again; it stays findable in its
-- own thread.
create or replace function agentq.set_search_hidden(message_id uuid, hidden boolean default true) returns void
language plpgsql as $$
begin
    update agentq.messages m set search_hidden = coalesce(hidden, true) where m.id = set_search_hidden.message_id;
    if not found then
        raise exception 'unknown message %', message_id using errcode = 'P0002';
    end if;
end $$;

-- Context from search -----------------------------------------------------------------------------

-- The search part of a generation's context (`context.search`): hits for any word
-- of the prompt's text (`text`) and/or vector (`vector`, needs the embedding and its model) among the
-- thread's earlier turns, or all the user's threads with `other_threads`, each with its
-- `message_range` neighbours (successful non-tool messages of the hit's thread, by ord). Messages
-- in `p_exclude` (the recent window) and, in the prompt's thread, turns from `p_before_ord` on are
-- left out. Oldest first; `score` is the hit's (a neighbour takes its best hit's).
create or replace function agentq.context_search(p_thread_id uuid, p_query text, p_query_embedding vector,
                                                 p_model text, p_search jsonb, p_before_ord int, p_exclude uuid[])
returns table (message_id uuid, thread_id uuid, ord int, step int, role text, text text, content jsonb,
               tool boolean, score double precision, hit boolean)
language plpgsql stable as $$
declare
    lim int := least(agentq.option_int(p_search->'limit', 10), 1000);
    use_text boolean := agentq.option_bool(p_search->'text', false) and coalesce(btrim(p_query), '') <> '';
    use_vector boolean := agentq.option_bool(p_search->'vector', false) and p_query_embedding is not null
                          and p_model is not null;
    other boolean := agentq.option_bool(p_search->'other_threads', false);
    before_n int := least(greatest(0, agentq.option_int(p_search #> '{message_range,before}', 2)), 1000);
    after_n int := least(greatest(0, agentq.option_int(p_search #> '{message_range,after}', 1)), 1000);
    excluded uuid[] := coalesce(p_exclude, '{}');
    fetch_n int := lim;
    any_word text;
    uid text;
begin
    if lim <= 0 or not (use_text or use_vector) then
        return;
    end if;
    if other then
        select t.user_id into uid from agentq.threads t where t.id = p_thread_id;
    end if;
    -- A prompt is a question, not a filter: any of its words may match (websearch syntax `a or b`).
    any_word := array_to_string(array(select w from regexp_split_to_table(coalesce(p_query, ''), '[^[:alnum:]_]+') w
                                       where w <> '' limit 64), ' or ');
    use_text := use_text and any_word <> '';
    -- Hits that are left out (recent, the prompt's turn and later) must not crowd out the others.
    if p_before_ord is not null then
        select count(*) + lim into fetch_n from agentq.messages m where m.thread_id = p_thread_id and m.ord >= p_before_ord;
    end if;
    fetch_n := least(1000, fetch_n + cardinality(excluded));
    return query
    with hits as (
        select h.message_id, h.thread_id, h.ord, h.score
          from agentq.search_messages(case when use_text then any_word end,
                                      case when uid is null then p_thread_id end, uid,
                                      fetch_n,
                                      case when use_vector then p_query_embedding end, p_model) h
         where not (h.thread_id = p_thread_id and p_before_ord is not null and h.ord >= p_before_ord)
           and h.message_id <> all (excluded)
         order by h.score desc, h.created_at desc, h.ord desc, h.step desc, h.message_id limit lim),
    ranged as (
        select distinct on (m.id) m.id, m.thread_id, m.ord, m.step, m.role, m.text, m.content, m.tool, h.score,
               m.id = h.message_id as hit, m.created_at
          from hits h
          join agentq.messages m on m.thread_id = h.thread_id and m.ord between h.ord - before_n and h.ord + after_n
         where m.status = 'success' and not m.tool and m.role in ('user', 'assistant')
           and not (m.thread_id = p_thread_id and p_before_ord is not null and m.ord >= p_before_ord)
           and m.id <> all (excluded)
           and (m.thread_id = p_thread_id or m.id = h.message_id or not m.search_hidden)
         order by m.id, (m.id = h.message_id) desc, h.score desc)
    select r.id, r.thread_id, r.ord, r.step, r.role, r.text, r.content, r.tool, r.score, r.hit
      from ranged r order by r.created_at, r.thread_id, r.ord, r.step;
end $$;

-- What a generation on `thread_id` would send (before tool pairing, which only drops orphaned tool
-- rows), so context can be inspected and tuned from psql: `section` is `search`, `recent` or
-- `prompt`, in that order. `query` is a new prompt (null: the thread's newest successful message is
-- the prompt). `options` are generate options over the thread's and the agent's, merged one level
-- deep as the worker merges them (GenerationSettings; `agent` names the agent, default `default`);
-- the recent window is cut at a whole turn as ContextAssembler.window cuts it. The vector leg uses
-- `query_embedding` or the prompt message's saved vector of the agent's embedding model; SQL cannot
-- call a model, so without either it is skipped.
create or replace function agentq.context_messages(thread_id uuid, query text default null, options jsonb default '{}',
                                                   query_embedding vector default null)
returns table (section text, message_id uuid, message_thread_id uuid, ord int, step int, role text, text text,
               tool boolean, score double precision)
language plpgsql as $$
#variable_conflict use_variable
declare
    t agentq.threads;
    a agentq.agents;
    merged jsonb;
    recent_n int;
    exclude_tools boolean;
    prompt agentq.messages;
    query_vec vector := query_embedding;
    recent uuid[];
begin
    select * into t from agentq.threads th where th.id = context_messages.thread_id;
    if t.id is null then
        raise exception 'unknown thread %', context_messages.thread_id using errcode = 'P0002';
    end if;
    select * into a from agentq.agents ag where ag.name = coalesce(options->>'agent', 'default');
    if a.name is null then
        raise exception 'unknown agent "%"', options->>'agent' using errcode = '42704';
    end if;
    perform agentq.check_options(coalesce(options, '{}') - 'agent');
    merged := coalesce(a.options, '{}') || coalesce(t.metadata->'agent_options', '{}') || coalesce(options, '{}');
    recent_n := agentq.option_int(merged #> '{context,recent_messages}', 100);
    exclude_tools := agentq.option_bool(merged #> '{context,exclude_tool_messages}', false);
    if query is null then
        select * into prompt from agentq.messages m where m.thread_id = t.id and m.status = 'success'
         order by m.ord desc, m.step desc limit 1;
        if query_vec is null and prompt.id is not null then
            select e.embedding into query_vec from agentq.embeddings e where e.message_id = prompt.id and e.model = a.embedding_model;
        end if;
    end if;
    -- The recent window: the latest messages up to the prompt, cut at a whole turn when full. A new
    -- `query` takes one place in it, as the saved prompt does in a generation.
    with w as (
        select m.id, m.ord from agentq.messages m
         where m.thread_id = t.id and m.status = 'success' and (prompt.id is null or m.ord <= prompt.ord)
         order by m.ord desc, m.step desc limit greatest(recent_n - (query is not null)::int, 0)),
    s as (select count(*) + (query is not null)::int >= recent_n as full, min(w.ord) as oldest from w)
    select coalesce(array_agg(w.id) filter (where not (s.full and s.oldest is distinct from prompt.ord and w.ord = s.oldest)), '{}')
      into recent from w, s;
    return query
    select 'search', s.message_id, s.thread_id, s.ord, s.step, s.role, s.text, s.tool, s.score
      from agentq.context_search(t.id, coalesce(query, prompt.text), query_vec, a.embedding_model, merged #> '{context,search}',
                                 case when query is null then prompt.ord else t.last_ord + 1 end, recent) s;
    return query
    select case when m.id = prompt.id then 'prompt' else 'recent' end, m.id, m.thread_id, m.ord, m.step, m.role, m.text,
           m.tool, null::double precision
      from agentq.messages m
     where m.id = any (recent) and not (exclude_tools and m.tool and (m.role = 'tool' or coalesce(m.text, '') = ''))
     order by m.ord, m.step;
    if query is not null then
        return query select 'prompt', null::uuid, t.id, t.last_ord + 1, 0, 'user', query, false, null::double precision;
    end if;
end $$;

insert into agentq.schema_migrations (version, name) values ('006', 'memory') on conflict (version) do nothing;
