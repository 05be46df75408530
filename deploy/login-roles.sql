-- Login users for a deployment, as members of the NOLOGIN group roles that `agentq migrate` creates
-- (agentq_worker, agentq_producer, agentq_reader). Run as the database owner, after the migrations:
--
--   psql "$OWNER_URL" -v ON_ERROR_STOP=1 -v worker_password='...' [-v reader_password='...'] -f deploy/login-roles.sql
--
-- Idempotent: re-running resets the passwords and the grants. agentq_reader_login (for KEDA's query
-- and dashboards) is made only when reader_password is given.

select 'create role agentq_worker_login login'
 where not exists (select from pg_roles where rolname = 'agentq_worker_login') \gexec
alter role agentq_worker_login password :'worker_password';
grant agentq_worker to agentq_worker_login;

\if :{?reader_password}
select 'create role agentq_reader_login login'
 where not exists (select from pg_roles where rolname = 'agentq_reader_login') \gexec
alter role agentq_reader_login password :'reader_password';
grant agentq_reader to agentq_reader_login;
\endif
