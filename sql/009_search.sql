-- AgentQueue 009: search over messages (SPEC section 9): a tsvector kept with each message, one HNSW
-- (cosine) index per embedding dimension in use, and search_messages fusing text and vector hits by
-- reciprocal rank fusion (k = 60) in one statement. Vectors of two models or two dimensions are
-- never compared: every vector query filters on both.

insert into agentq.settings (key, value, description) values
    ('text_search_config', '"english"',
     'Text search configuration of message tsvectors and queries (english stems English words; simple suits any language). Changing it needs agentq.reindex_text_search().')
on conflict (key) do nothing;

-- The configuration in use (a regconfig name from the setting).
create or replace function agentq.text_search_config() returns regconfig
language sql stable as $$ select coalesce(agentq.setting('text_search_config') #>> '{}', 'english')::regconfig $$;

alter table agentq.messages add column if not exists tsv tsvector;
-- True hides the message from user-wide (cross-thread) search; it stays findable in its thread.
alter table agentq.messages add column if not exists search_hidden boolean not null default false;
create index if not exists messages_tsv on agentq.messages using gin (tsv) where status = 'success' and not tool;

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

-- The HNSW index of one dimension: a partial expression index per dimension (`vector(N)` up to 2,000 dimensions, `halfvec(N)` up to 4,000).
create or replace function agentq.vector_index_name(p_dims int) returns text
language sql immutable as $$ select 'embeddings_hnsw_' || p_dims $$;

-- The type a dimension is indexed and compared as: HNSW indexes `vector` up to 2,000 dimensions.
create or replace function agentq.vector_type(p_dims int) returns text
language sql immutable as $$ select case when p_dims > 2000 then 'halfvec' else 'vector' end $$;

create or replace function agentq.ensure_vector_index(p_dims int) returns boolean
language plpgsql as $$
begin
    if to_regclass('agentq.' || agentq.vector_index_name(p_dims)) is not null then
        return false;
    end if;
    if p_dims > 4000 then
        raise exception 'embeddings of % dimensions cannot be indexed (at most 4000)', p_dims using errcode = '22023';
    end if;
    execute format('create index if not exists %I on agentq.embeddings using hnsw ((embedding::%s(%s)) %s_cosine_ops) where dims = %s',
                   agentq.vector_index_name(p_dims), agentq.vector_type(p_dims), p_dims, agentq.vector_type(p_dims), p_dims);
    return true;
end $$;

-- Saves vectors (computed by embed jobs, or elsewhere): [{"message_id", "model", "embedding"}], each
-- taking the message's thread and user.
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
           m.user_id, r.embedding::text::vector
      from jsonb_to_recordset(p_rows) as r(message_id uuid, model text, embedding jsonb)
      join agentq.messages m on m.id = r.message_id
    on conflict (message_id, model) do update
       set embedding = excluded.embedding, dims = excluded.dims, created_at = now();
    get diagnostics n = row_count;
    return n;
end $$;

-- Messages matching `query` (text search) and/or near `query_embedding` (vector search, among the
-- vectors of `model` and of that dimension), in one thread or across a user's threads, ranked by
-- reciprocal rank fusion: score = sum over the legs of 1 / (60 + rank). With only a query it is
-- text search, with only an embedding vector search. Successful, non-tool messages only; a message
-- with search_hidden is found in its thread but not user-wide. Runs as its caller: row-level
-- security applies.
do $$ begin
    if to_regtype('agentq.search_hit') is null then
        create type agentq.search_hit as (message_id uuid, thread_id uuid, ord int, step int, role text, text text,
                                          created_at timestamptz, score double precision, text_rank int, vector_rank int);
    end if;
end $$;

drop function if exists agentq.search_messages(text, uuid, text, int, vector, text);
create function agentq.search_messages(query text, thread_id uuid default null, user_id text default null,
                                       lim int default 10, query_embedding vector default null, model text default null)
returns setof agentq.search_hit
language plpgsql stable as $$
declare
    dims int := vector_dims(query_embedding);
    use_text boolean := coalesce(btrim(query), '') <> '';
    use_vector boolean := query_embedding is not null;
    emb_model text := model;
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
        select a.embedding_model into emb_model from agentq.agents a where a.name = 'default';
        if emb_model is null then
            raise exception 'a vector search needs the embedding model of query_embedding: pass model => ''provider:model'''
                using errcode = '22004';
        end if;
    end if;
    leg := lim * 3;
    if use_vector then
        -- A filtered HNSW scan keeps going until enough rows pass the filter (pgvector 0.8).
        perform set_config('hnsw.iterative_scan', 'relaxed_order', true);
        perform set_config('hnsw.ef_search', greatest(40, leg)::text, true);
    end if;
    return query execute format($q$
        with t as (
            select s.id, row_number() over (order by s.rank desc, s.id)::int as r
              from (select m.id, ts_rank_cd(m.tsv, q.q) as rank
                      from agentq.messages m, (select websearch_to_tsquery(agentq.text_search_config(), $1) as q) q
                     where $7 and m.tsv @@ q.q and m.status = 'success' and not m.tool
                       and ($2::uuid is null or m.thread_id = $2)
                       and ($2::uuid is not null or (m.user_id = $3 and not m.search_hidden))
                     order by rank desc limit $5) s),
        v as materialized (
            select s.id, row_number() over (order by s.dist, s.id)::int as r
              from (select e.message_id as id, e.embedding::%1$s(%2$s) <=> $4::%1$s(%2$s) as dist
                      from agentq.embeddings e
                     where $8 and e.dims = %2$s and e.model = $6
                       and ($2::uuid is null or e.thread_id = $2)
                       and ($2::uuid is not null or e.user_id = $3)
                     order by dist limit $5) s),
        fused as (
            select coalesce(t.id, v.id) as id, t.r as tr, v.r as vr,
                   coalesce(1.0 / (60 + t.r), 0) + coalesce(1.0 / (60 + v.r), 0) as score
              from t full outer join v on v.id = t.id)
        select m.id, m.thread_id, m.ord, m.step, m.role, m.text, m.created_at, f.score::double precision, f.tr, f.vr
          from fused f join agentq.messages m on m.id = f.id
         where m.status = 'success' and not m.tool and ($2::uuid is not null or not m.search_hidden)
         order by f.score desc, m.created_at desc, m.id
         limit $9
        $q$, agentq.vector_type(coalesce(dims, 1)), coalesce(dims, 1))
    using query, thread_id, user_id, query_embedding, leg, emb_model, use_text, use_vector, lim;
end $$;

insert into agentq.schema_migrations (version, name) values ('009', 'search') on conflict (version) do nothing;
