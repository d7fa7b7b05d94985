// The server side fails: a backend is terminated or PostgreSQL restarts; only the affected client notices.

import { afterAll, beforeAll, expect, test } from "bun:test";
import postgres from "postgres";
import { startPostgres, type PgInstance } from "./harness/postgres.ts";
import { startPgbun, type PgbunProcess } from "./harness/pgbun.ts";
import { errorCode, errorMessage, msg, RawClient } from "./harness/raw-client.ts";

let pg: PgInstance;
let bouncer: PgbunProcess;

beforeAll(async () => {
  pg = await startPostgres();
  bouncer = await startPgbun(["--upstream", pg.url("app", "apppass", "app"), "--pool-mode", "transaction", "--pool-size", "3"]);
});

afterAll(async () => {
  await bouncer.stop();
  await pg.stop();
});

const open = () => postgres(bouncer.url("app", "apppass", "app"), { max: 1, prepare: false });

test("pg_terminate_backend: the client in that transaction gets an error, other clients carry on, the pool refills", async () => {
  const victim = await RawClient.connect(bouncer.port);
  await victim.login("app", "app", "apppass");
  victim.send(msg.query("BEGIN; SELECT pg_backend_pid()"));
  const replies: string[] = [];
  let pid = 0;
  for (;;) {
    const m = await victim.next();
    replies.push(m.tag);
    if (m.tag === "D") pid = Number(new TextDecoder().decode(m.body.slice(6)));
    if (m.tag === "Z") break;
  }
  expect(pid).toBeGreaterThan(0);
  const bystanders = Array.from({ length: 4 }, open);
  const traffic = bystanders.map(async (b) => {
    for (let i = 0; i < 50; i++) expect((await b`SELECT ${i}::int AS i`)[0]!.i).toBe(i);
  });
  await pg.psql(`SELECT pg_terminate_backend(${pid})`);
  // PostgreSQL's own FATAL reaches the client, then the connection closes
  const fatal = await victim.next();
  expect(errorCode(fatal)).toBe("57P01");
  await victim.waitClosed();
  await Promise.all(traffic);
  // a new client works; the dead connection is never handed out
  const again = open();
  for (let i = 0; i < 10; i++) expect((await again`SELECT 1 AS one`)[0]!.one).toBe(1);
  await Promise.all([again.end(), ...bystanders.map((b) => b.end())]);
});

test("idle pooled servers terminated behind pgbun's back are never handed out", async () => {
  const sqls = Array.from({ length: 3 }, open);
  await Promise.all(sqls.map((s) => s`SELECT pg_sleep(0.05)`));
  await pg.psql("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = 'app' AND backend_type = 'client backend'");
  await Bun.sleep(200);
  for (const s of sqls) expect((await s`SELECT 2 AS two`)[0]!.two).toBe(2);
  await Promise.all(sqls.map((s) => s.end()));
});

test("PostgreSQL restarts: clients get errors while it is down, then the pool refills without restarting pgbun", async () => {
  const sql = open();
  expect((await sql`SELECT 1 AS one`)[0]!.one).toBe(1);
  await pg.stop("fast");
  // a raw client: postgres.js reports a FATAL at login as an unhandled rejection besides the failed query
  const c = await RawClient.connect(bouncer.port);
  await c.login("app", "app", "apppass");
  c.send(msg.query("SELECT 1"));
  const down = await c.next();
  expect(errorCode(down)).toBe("08006");
  expect(errorMessage(down)).toContain("cannot connect to the server");
  await pg.start();
  const after = open();
  expect((await after`SELECT 3 AS three`)[0]!.three).toBe(3);
  expect(bouncer.proc.exitCode).toBeNull();
  await Promise.all([sql.end().catch(() => {}), after.end()]);
});
