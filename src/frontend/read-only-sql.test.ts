import { describe, expect, test } from "bun:test";
import { kindOf } from "./read-route.ts";
import { statements } from "./read-only-sql.ts";

const kind = (sql: string) => kindOf(statements(sql));

// Each row is a reason the classifier exists: a read it must let through, or a write (or doubt) it must keep on the primary.
const table: Array<[string, "read" | "tx" | null]> = [
  // autocommit reads
  ["SELECT 1", "read"],
  ["select count(*), max(id) from orders where total > $1", "read"],
  ["SELECT pg_is_in_recovery(), inet_server_port()", "read"],
  ["WITH t AS (SELECT id FROM a) SELECT * FROM t JOIN b USING (id)", "read"],
  ["SELECT x::numeric(10, 2), CAST(y AS varchar(3)) FROM t WHERE z IN (SELECT 1) AND EXISTS (SELECT 2)", "read"],
  ["SELECT row_number() OVER (PARTITION BY a ORDER BY b) FROM t", "read"],
  ["VALUES (1), (2)", "read"],
  ["TABLE accounts", "read"],
  ["(SELECT 1) UNION (SELECT 2)", "read"],
  ["SELECT 1; SELECT 2", "read"],
  ["SELECT pg_catalog.now()", "read"],
  // literals and comments hide nothing
  ["SELECT 'insert into t values (1)', $$update$$, \"delete\" FROM t -- drop table x\n", "read"],
  ["SELECT /* nested /* update */ still comment */ 1", "read"],
  ["SELECT E'it\\'s; update t' AS s", "read"],
  // writes, locks and anything pgbun cannot vouch for
  ["INSERT INTO t VALUES (1)", null],
  ["SELECT * FROM t FOR UPDATE", null],
  ["SELECT * FROM t FOR NO KEY UPDATE", null],
  ["SELECT * FROM t FOR SHARE", null],
  ["SELECT * FROM t FOR KEY SHARE", null],
  ["WITH d AS (DELETE FROM t RETURNING *) SELECT * FROM d", null],
  ["SELECT nextval('s')", null],
  ["SELECT setval('s', 1)", null],
  ["SELECT pg_advisory_lock(1)", null],
  ["SELECT pg_try_advisory_xact_lock(1)", null],
  ["SELECT my_function(1)", null],
  ["SELECT public.lower('x')", null],
  ['SELECT "lower"(x) FROM t', null],
  ["SELECT set_config('search_path', 'x', false)", null],
  ["SELECT txid_current()", null],
  ["SELECT * INTO copy_of_t FROM t", null],
  ["SELECT 1; UPDATE t SET x = 1", null],
  ["SHOW transaction_read_only", null],
  ["SET search_path = x", null],
  ["LOCK TABLE t", null],
  ["COPY t TO STDOUT", null],
  // transactions that say they are read-only
  ["BEGIN READ ONLY", "tx"],
  ["START TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY", "tx"],
  ["BEGIN; SET TRANSACTION READ ONLY; SELECT my_report()", "tx"],
  ["BEGIN READ ONLY; SELECT 1; COMMIT", "tx"],
  ["BEGIN", null],
  ["BEGIN READ WRITE", null],
  // a hot standby refuses serializable transactions
  ["BEGIN ISOLATION LEVEL SERIALIZABLE READ ONLY DEFERRABLE", null],
  // a write after the read-only transaction ended, in the same request
  ["BEGIN READ ONLY; SELECT 1; COMMIT; INSERT INTO t VALUES (1)", null],
];

describe("read_write_split's classifier", () => {
  for (const [sql, want] of table) {
    test(`${JSON.stringify(sql)} -> ${want ?? "primary"}`, () => {
      expect(kind(sql)).toBe(want);
    });
  }
});
