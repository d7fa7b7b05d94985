// Pooling proven against a real PostgreSQL: few backends serve many clients, and each mode keeps its promise.

import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import postgres from "postgres";
import { startPostgres, type PgInstance } from "./harness/postgres.ts";
import { startPgbun, type PgbunProcess } from "./harness/pgbun.ts";

let pg: PgInstance;
const bouncers: PgbunProcess[] = [];

async function pgbun(mode: string, size = 5, extra: string[] = []): Promise<PgbunProcess> {
  const p = await startPgbun(["--upstream", pg.url("app", "apppass", "app"), "--pool-mode", mode, "--pool-size", String(size), ...extra]);
  bouncers.push(p);
  return p;
}

beforeAll(async () => {
  pg = await startPostgres();
  await pg.psql("CREATE TABLE t (id int, v int)", { user: "app", password: "apppass", db: "app" });
});

afterAll(async () => {
  for (const b of bouncers) await b.stop();
  await pg.stop();
});

async function appBackends(direct: postgres.Sql): Promise<number> {
  const r = await direct`SELECT count(*)::int AS n FROM pg_stat_activity WHERE usename = 'app' AND backend_type = 'client backend'`;
  return r[0]!.n;
}

describe("transaction mode", () => {
  test("50 clients x 20 transactions share at most 5 server connections, and every write lands", async () => {
    const p = await pgbun("transaction", 5);
    await pg.psql("TRUNCATE t", { user: "app", password: "apppass", db: "app" });
    const direct = postgres(pg.url(), { max: 1 });
    let peak = 0;
    let running = true;
    const watcher = (async () => {
      while (running) {
        peak = Math.max(peak, await appBackends(direct));
        await Bun.sleep(10);
      }
    })();
    const clients = Array.from({ length: 50 }, () => postgres(p.url("app", "apppass", "app"), { max: 1, prepare: false }));
    await Promise.all(
      clients.map(async (sql, i) => {
        for (let j = 0; j < 20; j++) {
          await sql.begin(async (tx) => {
            await tx`INSERT INTO t VALUES (${i}, ${j})`;
            await tx`UPDATE t SET v = v + 1000 WHERE id = ${i} AND v = ${j}`;
          });
        }
      }),
    );
    running = false;
    await watcher;
    peak = Math.max(peak, await appBackends(direct));
    await direct.end();
    const rows = await clients[0]!`SELECT count(*)::int AS n, sum(v)::int AS s FROM t`;
    await Promise.all(clients.map((c) => c.end()));
    expect(rows[0]!.n).toBe(1000);
    expect(rows[0]!.s).toBe(50 * (190 + 20 * 1000));
    expect(peak).toBeLessThanOrEqual(5);
    expect(peak).toBeGreaterThan(0);
  });

  test("a transaction keeps its server: statements inside BEGIN see one backend", async () => {
    const p = await pgbun("transaction", 3);
    const sql = postgres(p.url("app", "apppass", "app"), { max: 1, prepare: false });
    const others = Array.from({ length: 6 }, () => postgres(p.url("app", "apppass", "app"), { max: 1, prepare: false }));
    const busy = others.map(async (o) => {
      for (let i = 0; i < 30; i++) await o`SELECT pg_backend_pid()`;
    });
    const pids = await sql.begin(async (tx) => {
      const seen = new Set<number>();
      for (let i = 0; i < 10; i++) {
        seen.add((await tx`SELECT pg_backend_pid() AS pid`)[0]!.pid);
        await Bun.sleep(2);
      }
      return seen;
    });
    await Promise.all(busy);
    expect(pids.size).toBe(1);
    await Promise.all([sql.end(), ...others.map((o) => o.end())]);
  });
});

describe("session mode", () => {
  test("a client keeps one server for its whole session, and the next client gets it reset", async () => {
    const p = await pgbun("session", 1);
    const a = postgres(p.url("app", "apppass", "app"), { max: 1, prepare: false });
    const pid1 = (await a`SELECT pg_backend_pid() AS pid`)[0]!.pid;
    await a`SET search_path TO leaked`;
    await a`SELECT 1`;
    const pid2 = (await a`SELECT pg_backend_pid() AS pid`)[0]!.pid;
    expect(pid2).toBe(pid1);
    await a.end();
    const b = postgres(p.url("app", "apppass", "app"), { max: 1, prepare: false });
    const row = (await b`SELECT pg_backend_pid() AS pid, current_setting('search_path') AS sp`)[0]!;
    expect(row.pid).toBe(pid1);
    expect(row.sp).not.toBe("leaked");
    await b.end();
  });
});

describe("statement mode", () => {
  test("a transaction block is refused, rolled back, and the server is not handed on in it", async () => {
    const p = await pgbun("statement", 1);
    const sql = postgres(p.url("app", "apppass", "app"), { max: 1, prepare: false });
    await sql`TRUNCATE t`;
    const err = await sql.unsafe("BEGIN; INSERT INTO t VALUES (1, 1)").catch((e) => e);
    expect(String(err.message)).toContain("transaction blocks not allowed in statement pooling mode");
    const other = postgres(p.url("app", "apppass", "app"), { max: 1, prepare: false });
    const row = (await other`SELECT count(*)::int AS n, pg_current_xact_id_if_assigned() IS NULL AS fresh FROM t`)[0]!;
    expect(row.n).toBe(0);
    expect(row.fresh).toBe(true);
    // autocommit statements still work on the same client connection
    await sql`INSERT INTO t VALUES (2, 2)`;
    expect((await other`SELECT count(*)::int AS n FROM t`)[0]!.n).toBe(1);
    await Promise.all([sql.end(), other.end()]);
  });

  test("multi-statement queries run (as one implicit transaction) and the server goes back after each", async () => {
    const p = await pgbun("statement", 2);
    const sql = postgres(p.url("app", "apppass", "app"), { max: 1, prepare: false });
    const r = await sql.unsafe("SELECT 1 AS a; SELECT 2 AS b");
    expect(r.length).toBe(2);
    await sql.end();
  });
});
