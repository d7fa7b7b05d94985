// Session state in transaction mode: advisory locks, temporary tables and WITH HOLD cursors keep their client on its
// server while they last and never reach another client; session SETs follow the client to every server.

import { afterAll, beforeAll, expect, test } from "bun:test";
import postgres from "postgres";
import { startPostgres, type PgInstance } from "./harness/postgres.ts";
import { startPgbun, type PgbunProcess } from "./harness/pgbun.ts";
import { adminQuery } from "./harness/config-file.ts";

let pg: PgInstance;
let bouncer: PgbunProcess;

beforeAll(async () => {
  pg = await startPostgres();
  bouncer = await startPgbun(["--upstream", pg.url("app", "apppass", "app"), "--pool-mode", "transaction", "--pool-size", "2", "--admin-users", "app"]);
});

afterAll(async () => {
  await bouncer.stop();
  await pg.stop();
});

const open = (prepare = false) => postgres(bouncer.url("app", "apppass", "app"), { max: 1, prepare });
const pidOf = async (sql: postgres.Sql) => (await sql`SELECT pg_backend_pid() AS pid`)[0]!.pid as number;

for (const prepare of [false, true]) {
  const how = prepare ? "prepared statements" : "simple queries";

  test(`a session advisory lock keeps its client on its server until unlocked, and others never inherit it (${how})`, async () => {
    const a = open(prepare);
    const b = open(prepare);
    await a`SELECT pg_advisory_lock(42)`;
    const pid = await pidOf(a);
    // b runs meanwhile on the other server; a stays where its lock is
    for (let i = 0; i < 5; i++) {
      expect((await b`SELECT pg_try_advisory_lock(42) AS got`)[0]!.got).toBe(false);
      expect(await pidOf(a)).toBe(pid);
    }
    await a`SELECT pg_advisory_unlock(42)`;
    expect((await b`SELECT pg_try_advisory_lock(42) AS got`)[0]!.got).toBe(true);
    await b`SELECT pg_advisory_unlock_all()`;
    // unpinned: a's server goes back to the pool, so both servers serve whoever comes
    const c = open(prepare);
    const seen = new Set<number>();
    for (let i = 0; i < 10; i++) {
      await Promise.all([c`SELECT pg_sleep(0.01)`, a`SELECT pg_sleep(0.01)`]);
      seen.add(await pidOf(c));
    }
    expect(seen.size).toBeGreaterThanOrEqual(1);
    await Promise.all([a.end(), b.end(), c.end()]);
  });
}

test("a client that leaves holding a lock and a temporary table leaves nothing behind for the next client", async () => {
  const a = open();
  await a`SELECT pg_advisory_lock(7)`;
  await a`CREATE TEMP TABLE mine (x int)`;
  await a.end();
  // As with a direct connection, the lock goes a moment after the client does (here, once DISCARD ALL has run).
  await Bun.sleep(200);
  const b = open();
  const c = open();
  for (const s of [b, c]) {
    expect((await s`SELECT pg_try_advisory_lock(7) AS got`)[0]!.got).toBe(true);
    await s`SELECT pg_advisory_unlock_all()`;
    const err = await s`SELECT * FROM mine`.catch((e: { code: string }) => e.code);
    expect(err).toBe("42P01");
  }
  await Promise.all([b.end(), c.end()]);
});

test("a temporary table stays reachable for its client across transactions and unpins when dropped", async () => {
  const a = open();
  const b = open();
  await a`CREATE TEMPORARY TABLE scratch (x int)`;
  for (let i = 0; i < 5; i++) {
    await a`INSERT INTO scratch VALUES (${i})`;
    // b keeps the other server busy in between; a never loses its table
    await b`SELECT 1`;
  }
  expect((await a`SELECT count(*)::int AS n FROM scratch`)[0]!.n).toBe(5);
  expect(await b`SELECT * FROM scratch`.catch((e: { code: string }) => e.code)).toBe("42P01");
  const shown = await adminQuery(bouncer.port, "SHOW CLIENTS", "app", "apppass");
  expect(shown.filter((r) => r.database === "app").map((r) => r.pinned).sort()).toEqual(["0", "1"]);
  await a`DROP TABLE scratch`;
  await a`SELECT 1`;
  const after = await adminQuery(bouncer.port, "SHOW CLIENTS", "app", "apppass");
  expect(after.filter((r) => r.database === "app").map((r) => r.pinned)).toEqual(["0", "0"]);
  await Promise.all([a.end(), b.end()]);
});

test("a WITH HOLD cursor can be fetched from in later transactions, on the same server", async () => {
  const a = open();
  const b = open();
  await a`DECLARE c CURSOR WITH HOLD FOR SELECT g FROM generate_series(1, 3) AS g`;
  // b takes whatever server is free and holds it: were a's server free, b would hold the cursor's server
  const held = b.begin(async (tx) => {
    await tx`SELECT 1`;
    await Bun.sleep(300);
  });
  await Bun.sleep(50);
  const got: number[] = [];
  for (let i = 0; i < 3; i++) got.push((await a`FETCH 1 FROM c`)[0]!.g as number);
  expect(got).toEqual([1, 2, 3]);
  await a`CLOSE c`;
  await held;
  await Promise.all([a.end(), b.end()]);
});

test("a session SET follows its client to every server and never reaches another client; RESET undoes it", async () => {
  const a = open();
  const b = open();
  const base = (await b`SELECT current_setting('statement_timeout') AS v`)[0]!.v;
  await a`SET statement_timeout = '1234ms'`;
  await a`SET search_path TO public, pg_catalog`;
  for (let i = 0; i < 6; i++) {
    const [ra, rb] = await Promise.all([
      a`SELECT current_setting('statement_timeout') AS v, current_setting('search_path') AS p, pg_sleep(0.01)`,
      b`SELECT current_setting('statement_timeout') AS v, pg_sleep(0.01)`,
    ]);
    expect(ra[0]!.v).toBe("1234ms");
    expect(ra[0]!.p).toBe("public, pg_catalog");
    expect(rb[0]!.v).toBe(base);
  }
  await a`RESET statement_timeout`;
  for (let i = 0; i < 4; i++) expect((await a`SELECT current_setting('statement_timeout') AS v`)[0]!.v).toBe(base);
  await Promise.all([a.end(), b.end()]);
});
