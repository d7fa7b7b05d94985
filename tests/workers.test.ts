// workers = 2: two processes share the port with SO_REUSEPORT, split the pool, and route cancels to the owner.

import { afterAll, beforeAll, expect, test } from "bun:test";
import postgres from "postgres";
import { startPostgres, type PgInstance } from "./harness/postgres.ts";
import { startPgbun, type PgbunProcess } from "./harness/pgbun.ts";

let pg: PgInstance;
let bouncer: PgbunProcess;

beforeAll(async () => {
  pg = await startPostgres();
  bouncer = await startPgbun(["--upstream", pg.url("app", "apppass", "app"), "--pool-mode", "transaction", "--pool-size", "16", "--workers", "2"]);
});

afterAll(async () => {
  expect(await bouncer.stop("SIGTERM")).toBe(0);
  await pg.stop();
});

test("both workers serve clients, and together they keep to the configured pool size", async () => {
  const direct = postgres(pg.url(), { max: 1 });
  const sqls = Array.from({ length: 40 }, () => postgres(bouncer.url("app", "apppass", "app"), { max: 1, prepare: false }));
  let peak = 0;
  await Promise.all(
    sqls.map(async (s) => {
      for (let i = 0; i < 10; i++) await s`SELECT pg_sleep(0.01)`;
    }),
  );
  peak = (await direct`SELECT count(*)::int AS n FROM pg_stat_activity WHERE usename = 'app' AND backend_type = 'client backend'`)[0]!.n;
  expect(peak).toBeLessThanOrEqual(16);
  expect(peak).toBeGreaterThanOrEqual(2);
  await Promise.all([...sqls.map((s) => s.end()), direct.end()]);
});

test("a cancel request reaches the worker that owns the client, whichever worker accepts it", async () => {
  const sqls = Array.from({ length: 8 }, () => postgres(bouncer.url("app", "apppass", "app"), { max: 1, prepare: false }));
  const results = await Promise.all(
    sqls.map(async (sql) => {
      const q = sql`SELECT pg_sleep(5)`;
      setTimeout(() => q.cancel(), 300);
      return q.then(() => "finished").catch((e) => e.code);
    }),
  );
  expect(results).toEqual(Array(8).fill("57014"));
  await Promise.all(sqls.map((s) => s.end()));
});

test("workers exit when their supervisor is killed, rather than holding the port unsupervised", async () => {
  const p = await startPgbun(["--upstream", pg.url("app", "apppass", "app"), "--pool-mode", "transaction", "--workers", "2"]);
  const children = () => Bun.spawnSync(["pgrep", "-P", String(p.proc.pid)]).stdout.toString().trim().split("\n").filter(Boolean).map(Number);
  const workers = children();
  expect(workers).toHaveLength(2);
  p.proc.kill("SIGKILL");
  await p.proc.exited;
  const alive = (pid: number) => {
    try {
      process.kill(pid, 0);
      return true;
    } catch {
      return false;
    }
  };
  const deadline = Date.now() + 10_000;
  while (workers.some(alive) && Date.now() < deadline) await Bun.sleep(50);
  expect(workers.filter(alive)).toEqual([]);
  expect(await Bun.connect({ hostname: "127.0.0.1", port: p.port, socket: { data() {} } }).then(() => "connected", () => "refused")).toBe("refused");
});
