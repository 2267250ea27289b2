-- One look of lockstep watch, in one statement (so that what it reads of
-- pg_stat_activity, pg_blocking_pids and pg_locks is read together):
--
--   $1  LIKE pattern on application_name; '' means any
--   $2  role name; '' means any
--   $3  these pids only; empty means any
--   $4  every database, not only the connection's
--   $5  at most this many lock rows
--   $6  read the deadlock counter (a look does once a second)
--
-- Rows of three kinds, told apart by the first column:
--   'c'  one row: the deadlock counter of the watched database(s), and
--        the oid of the connection's database (in the datname column)
--   's'  a session: each chosen one (the filter's), each blocker of a
--        chosen one (one step beyond the filter), and each prepared
--        transaction that blocks one (pid 0)
--   'l'  a lock row, only while a chosen session waits, and only those
--        that explain a wait: each waiter's awaited lock and the tuple
--        lock it holds while it waits for the row's locker, and what its
--        blockers hold of the objects the waiters want.
--
-- pg_blocking_pids is asked only of a backend that waits, or whose wait the
-- server hides from a role without pg_read_all_stats (its state is NULL
-- then), since it takes the lock manager's partition locks; once per
-- backend. pg_locks is built whole by the server whatever is kept of it:
-- that is read only when someone waits, once.
WITH act AS MATERIALIZED (
    SELECT a.pid, a.datname::text AS datname, a.application_name AS app, a.usename::text AS usr,
           a.state, a.wait_event_type, a.wait_event, a.xact_start, a.backend_start, a.query, a.backend_type,
           a.pid <> pg_backend_pid()
             -- A role without pg_read_all_stats reads NULL for other roles' backend_type.
             AND coalesce(a.backend_type, 'client backend') = 'client backend'
             AND ($4 OR a.datname = current_database())
             AND ($1 = '' OR a.application_name LIKE $1) AND ($2 = '' OR a.usename = $2)
             AND (cardinality($3::int[]) = 0 OR a.pid = ANY($3)) AS chosen
    FROM pg_stat_activity a
),
t AS MATERIALIZED (
    SELECT act.pid,
           CASE WHEN act.wait_event_type IN ('Lock', 'IPC') OR act.state IS NULL THEN pg_blocking_pids(act.pid) END AS blocked_by,
           CASE WHEN act.wait_event = 'SafeSnapshot' THEN pg_safe_snapshot_blocking_pids(act.pid) END AS safe_by
    FROM act
    WHERE act.chosen
),
w AS MATERIALIZED (
    SELECT t.pid, t.blocked_by, t.safe_by FROM t WHERE cardinality(t.blocked_by) > 0 OR cardinality(t.safe_by) > 0
),
b AS MATERIALIZED (
    SELECT unnest(w.blocked_by || coalesce(w.safe_by, '{}')) AS pid FROM w
),
lk AS MATERIALIZED (
    SELECT l.*
    FROM pg_locks l
    WHERE EXISTS (SELECT FROM w)
      AND (l.pid IN (SELECT w.pid FROM w) OR coalesce(l.pid, 0) IN (SELECT b.pid FROM b))
),
wanted AS MATERIALIZED (
    SELECT lk.locktype, lk.relation, lk.transactionid, lk.virtualxid, lk.objid
    FROM lk WHERE NOT lk.granted AND lk.pid IN (SELECT w.pid FROM w)
),
-- The rows kept: each waiter's awaited lock and granted tuple lock, and
-- what is held of the objects wanted — by type and oid, id or key, which
-- may keep a few rows too many (a tuple of the same table): the watch
-- matches them exactly.
kept AS MATERIALIZED (
    SELECT lk.*
    FROM lk
    WHERE (NOT lk.granted AND lk.pid IN (SELECT w.pid FROM w))
       OR (lk.granted AND lk.locktype = 'tuple' AND lk.pid IN (SELECT w.pid FROM w))
       OR (lk.granted AND lk.locktype IN (SELECT wanted.locktype FROM wanted)
           AND (lk.relation IN (SELECT wanted.relation FROM wanted)
                OR lk.transactionid IN (SELECT wanted.transactionid FROM wanted)
                OR lk.virtualxid IN (SELECT wanted.virtualxid FROM wanted)
                OR lk.objid IN (SELECT wanted.objid FROM wanted)))
    LIMIT $5
),
me AS MATERIALIZED (
    SELECT d.oid FROM pg_database d WHERE d.datname = current_database()
),
-- Names only for this database's relations (and the shared catalogs): an
-- oid of another database would name the wrong one. Each once, by index.
rel AS MATERIALIZED (
    SELECT c.oid,
           CASE WHEN n.nspname = current_schema() OR n.nspname = 'pg_catalog' THEN c.relname::text
                ELSE n.nspname || '.' || c.relname END AS name,
           c.relkind::text AS relkind
    FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
    WHERE c.oid = ANY (ARRAY(SELECT DISTINCT kept.relation FROM kept
                             WHERE kept.database = 0 OR kept.database IN (SELECT me.oid FROM me)))
),
prep AS MATERIALIZED (
    -- The prepared transactions that block: pg_locks shows their locks with
    -- no pid, under the virtual transaction of their transactionid lock.
    SELECT p.gid, p.owner::text AS owner, p.prepared, p.database::text AS datname, x.virtualtransaction
    FROM pg_prepared_xacts p
    JOIN lk x ON x.pid IS NULL AND x.locktype = 'transactionid' AND x.transactionid = p.transaction
    WHERE 0 IN (SELECT b.pid FROM b)
)
SELECT 'c', pg_backend_pid(), NULL::bool, (SELECT me.oid::text FROM me), NULL::text, NULL::text, NULL::text, NULL::text, NULL::text,
       NULL::timestamptz, NULL::timestamptz, NULL::text, NULL::int4[], NULL::int4[],
       -- The function, not the view pg_stat_database, which reads every counter of every database.
       CASE WHEN $6 THEN (SELECT sum(pg_stat_get_db_deadlocks(d.oid))::bigint FROM pg_database d WHERE $4 OR d.datname = current_database()) END,
       NULL::text, NULL::text, NULL::int8, NULL::int8, NULL::text, NULL::text, NULL::text, NULL::int4, NULL::int2, NULL::text,
       NULL::int8, NULL::int8, NULL::int8, NULL::int2, NULL::text, NULL::bool, NULL::bool, NULL::timestamptz
UNION ALL
SELECT 's', act.pid, act.chosen, act.datname, act.app, act.usr, act.state, act.wait_event_type, act.wait_event,
       act.xact_start, act.backend_start, act.query, t.blocked_by, t.safe_by, NULL,
       NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL
FROM act LEFT JOIN t ON t.pid = act.pid
WHERE act.chosen OR act.pid IN (SELECT b.pid FROM b)
UNION ALL
SELECT 's', 0, false, prep.datname, 'prepared:' || prep.gid, prep.owner, 'prepared', NULL, NULL,
       prep.prepared, NULL, NULL, NULL, NULL, NULL,
       prep.virtualtransaction, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL
FROM prep
UNION ALL
SELECT 'l', coalesce(kept.pid, 0), NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
       kept.virtualtransaction, kept.locktype, kept.database::int8, kept.relation::int8, NULL,
       rel.name, rel.relkind,
       kept.page, kept.tuple::int2, kept.virtualxid,
       kept.transactionid::text::int8, kept.classid::int8, kept.objid::int8, kept.objsubid,
       kept.mode, kept.granted, kept.fastpath, kept.waitstart
FROM kept
LEFT JOIN rel ON rel.oid = kept.relation AND (kept.database = 0 OR kept.database IN (SELECT me.oid FROM me))
