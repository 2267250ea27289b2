-- One poll of a run's locks: its backends from pg_stat_activity, each with
-- its rows of pg_locks, and (when $3) its prepared transactions, whose locks
-- outlive their backend: pg_locks shows those with no pid, under the virtual
-- transaction of their transactionid lock.
--
--   $1  LIKE pattern of the run's sessions' application_name: lockstep/<run>/T%
--   $2  LIKE pattern of the run's prepared transactions' global ids: lockstep/<run>/%
--   $3  whether to read prepared transactions at all
--   $4  pids of the run's sessions that bear a name of the user's choosing
--       (the isolation tester's PGAPPNAME/session), to read besides $1's
--
-- A backend holding no lock comes back once, with NULL lock columns.
-- Relation names are resolved only for locks in this database (or shared
-- catalogs): an oid from another database would name the wrong table.
-- pg_blocking_pids is asked only of backends that wait (or whose wait the
-- server hides from a role without pg_read_all_stats), since it takes the
-- lock manager's partition locks: for a lock, or for inter-process
-- communication — a parallel query's leader waits so for its workers, and
-- pg_blocking_pids answers for the leader's whole lock group. l.waitstart exists from PostgreSQL 14 on;
-- the observer reads NULL in its place on older servers.
WITH backend AS (
    SELECT a.pid,
           a.application_name                          AS name,
           coalesce(a.state, '')                       AS state,
           coalesce(a.wait_event_type, '')             AS wait_event_type,
           coalesce(a.wait_event, '')                  AS wait_event,
           a.xact_start,
           coalesce(a.backend_xid::text, '0')::bigint  AS xid,
           coalesce(a.query, '')                       AS query,
           CASE WHEN a.wait_event_type IN ('Lock', 'IPC') OR a.state IS NULL THEN pg_blocking_pids(a.pid) END
                                                       AS blocking_pids,
           CASE WHEN a.wait_event = 'SafeSnapshot' THEN pg_safe_snapshot_blocking_pids(a.pid) END
                                                       AS safe_snapshot_blocking_pids,
           NULL::text                                  AS virtualtransaction
    FROM pg_stat_activity a
    WHERE (a.application_name LIKE $1 AND a.datname = current_database()) OR a.pid = ANY($4)
  UNION ALL
    SELECT 0,
           'prepared:' || p.gid,
           'prepared', '', '',
           p.prepared,
           p.transaction::text::bigint,
           '', NULL, NULL,
           t.virtualtransaction
    FROM pg_prepared_xacts p
    JOIN pg_locks t ON t.locktype = 'transactionid' AND t.transactionid = p.transaction AND t.pid IS NULL
    WHERE $3 AND p.gid LIKE $2 AND p.database = current_database()
)
SELECT b.pid, b.name, b.state, b.wait_event_type, b.wait_event, b.xact_start, b.xid, b.query,
       b.blocking_pids, b.safe_snapshot_blocking_pids,
       l.locktype,
       CASE WHEN n.nspname = current_schema() THEN c.relname::text ELSE n.nspname || '.' || c.relname END
                                                       AS relation,
       c.relkind::text                                 AS relkind,
       l.page,
       l.tuple::int2                                   AS tuple,
       l.virtualxid,
       coalesce(l.transactionid::text, '0')::bigint    AS transactionid,
       l.classid::bigint                               AS classid,
       l.objid::bigint                                 AS objid,
       l.objsubid,
       l.mode,
       l.granted,
       l.fastpath,
       l.waitstart
       -- How long the server has spent on the poll so far: the last row's
       -- value is its cost, whatever the client's own pace.
       , extract(epoch FROM clock_timestamp() - statement_timestamp())::float8 AS server_seconds
FROM backend b
LEFT JOIN pg_locks l ON coalesce(l.pid, 0) = b.pid
      AND (b.pid <> 0 OR l.virtualtransaction = b.virtualtransaction)
LEFT JOIN pg_class c ON c.oid = l.relation
      AND l.database IN (0, (SELECT oid FROM pg_database WHERE datname = current_database()))
LEFT JOIN pg_namespace n ON n.oid = c.relnamespace
-- By session; within it granted locks first, then by lock type, relation, mode.
ORDER BY b.name, l.granted DESC, l.locktype, relation, l.mode
