// PgBouncer's limits and timeouts, with its names and meanings: each one fires, says what fired, and nothing else breaks.

import { afterAll, afterEach, beforeAll, describe, expect, test } from "bun:test";
import postgres from "postgres";
import { startPostgres, type PgInstance } from "./harness/postgres.ts";
import { startPgbun, type PgbunProcess } from "./harness/pgbun.ts";
import { errorCode, errorMessage, msg, RawClient } from "./harness/raw-client.ts";

let pg: PgInstance;
const started: PgbunProcess[] = [];

beforeAll(async () => {
  pg = await startPostgres();
});

// Each test counts PostgreSQL backends: earlier pgbuns must be gone with their servers.
afterEach(async () => {
  for (const p of started.splice(0)) await p.stop();
  await until(async () => (await backends()) === 0);
});

afterAll(async () => {
  await pg.stop();
});

async function pgbun(...flags: string[]): Promise<PgbunProcess> {
  const p = await startPgbun(["--upstream", pg.url("app", "apppass", "app"), "--pool-mode", "transaction", ...flags]);
  started.push(p);
  return p;
}

async function login(p: PgbunProcess): Promise<RawClient> {
  const c = await RawClient.connect(p.port);
  const m = await c.login("app", "app", "apppass");
  expect(m.at(-1)!.tag).toBe("Z");
  return c;
}

const backends = async () => Number(await pg.psql("SELECT count(*) FROM pg_stat_activity WHERE usename = 'app' AND backend_type = 'client backend'"));

async function until(cond: () => Promise<boolean>, ms = 5000): Promise<boolean> {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (await cond()) return true;
    await Bun.sleep(50);
  }
  return false;
}

describe("limits", () => {
  test("beyond max_client_conn a client gets a clear error and is closed; the others keep working", async () => {
    const p = await pgbun("--max-client-conn", "2");
    const a = await login(p);
    const b = await login(p);
    const c = await RawClient.connect(p.port);
    const refused = await c.login("app", "app", "apppass");
    expect(errorCode(refused.at(-1)!)).toBe("53300");
    expect(errorMessage(refused.at(-1)!)).toContain("max_client_conn");
    await c.waitClosed();
    a.send(msg.query("SELECT 1"));
    expect(await a.untilReady()).toEqual(["T", "D", "C", "Z:I"]);
    b.close();
    await Bun.sleep(100);
    const d = await login(p);
    d.close();
    a.close();
  });

  test("clients wait in FIFO order for a free server, and query_wait_timeout fires with a clear error", async () => {
    const p = await pgbun("--pool-size", "1", "--query-wait-timeout", "1");
    const holder = await login(p);
    holder.send(msg.query("BEGIN"));
    await holder.untilReady();
    const waiter = await login(p);
    waiter.send(msg.query("SELECT 1"));
    const err = await waiter.next(4000);
    expect(errorCode(err)).toBe("08P01");
    expect(errorMessage(err)).toContain("query_wait_timeout");
    holder.send(msg.query("COMMIT"));
    expect(await holder.untilReady()).toEqual(["C", "Z:I"]);
    // FIFO: first come, first served once the server frees up
    holder.send(msg.query("BEGIN"));
    await holder.untilReady();
    const order: number[] = [];
    const queued = await Promise.all([login(p), login(p), login(p)]);
    for (let i = 0; i < queued.length; i++) {
      queued[i]!.send(msg.query(`SELECT ${i}`));
      await Bun.sleep(30);
    }
    holder.send(msg.query("COMMIT"));
    await Promise.all(queued.map(async (q, i) => {
      await q.untilReady();
      order.push(i);
    }));
    expect(order).toEqual([0, 1, 2]);
    for (const q of queued) q.close();
    holder.close();
  });
});

describe("timeouts", () => {
  test("client_idle_timeout closes a client idle outside a transaction", async () => {
    const p = await pgbun("--client-idle-timeout", "0.5");
    const c = await login(p);
    const m = await c.next(3000);
    expect(errorMessage(m)).toContain("client_idle_timeout");
    await c.waitClosed();
  });

  test("idle_transaction_timeout closes a client idle inside a transaction and rolls it back", async () => {
    const p = await pgbun("--idle-transaction-timeout", "0.5");
    const c = await login(p);
    c.send(msg.query("BEGIN; CREATE TABLE itt (x int)"));
    expect(await c.untilReady()).toEqual(["C", "C", "Z:T"]);
    const m = await c.next(3000);
    expect(errorMessage(m)).toContain("idle_transaction_timeout");
    await c.waitClosed();
    expect(await until(async () => (await pg.psql("SELECT count(*) FROM pg_stat_activity WHERE usename = 'app' AND state LIKE 'idle in transaction%'")) === "0")).toBe(true);
    expect(await pg.psql("SELECT to_regclass('itt') IS NULL", { user: "app", password: "apppass", db: "app" })).toBe("t");
  });

  test("server_idle_timeout closes servers left idle, down to min_pool_size", async () => {
    const p = await pgbun("--pool-size", "4", "--server-idle-timeout", "0.5", "--min-pool-size", "1");
    const sqls = Array.from({ length: 4 }, () => postgres(p.url("app", "apppass", "app"), { max: 1, prepare: false }));
    await Promise.all(sqls.map((s) => s`SELECT pg_sleep(0.1)`));
    expect(await backends()).toBe(4);
    expect(await until(async () => (await backends()) === 1)).toBe(true);
    await Promise.all(sqls.map((s) => s.end()));
  });

  test("min_pool_size keeps servers warm before any client asks", async () => {
    const p = await pgbun("--pool-size", "5", "--min-pool-size", "3");
    // the pool exists once someone has logged in
    (await login(p)).close();
    expect(await until(async () => (await backends()) === 3)).toBe(true);
  });

  test("server_lifetime replaces old servers when they come back idle", async () => {
    const p = await pgbun("--pool-size", "1", "--server-lifetime", "0.5");
    const sql = postgres(p.url("app", "apppass", "app"), { max: 1, prepare: false });
    const first = (await sql`SELECT pg_backend_pid() AS pid`)[0]!.pid;
    await Bun.sleep(800);
    const second = (await sql`SELECT pg_backend_pid() AS pid`)[0]!.pid;
    expect(second).not.toBe(first);
    await sql.end();
  });

  test("server_connect_timeout gives up on a server that accepts but never answers", async () => {
    const silent = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data() {} } });
    const p = await startPgbun([
      "--upstream",
      `postgres://app:apppass@127.0.0.1:${silent.port}/app`,
      "--pool-mode",
      "transaction",
      "--server-connect-timeout",
      "0.5",
    ]);
    started.push(p);
    const c = await RawClient.connect(p.port);
    const m = await c.login("app", "app", "apppass");
    expect(errorCode(m.at(-1)!)).toBe("08006");
    expect(errorMessage(m.at(-1)!)).toContain("server_connect_timeout");
    silent.stop(true);
  });
});
