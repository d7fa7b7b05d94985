// The HTTP endpoint (checked with promtool) and the process lifecycle: SIGHUP reload, SIGTERM drain, SIGINT, log formats.

import { readFileSync } from "node:fs";
import postgres from "postgres";
import { afterAll, afterEach, beforeAll, describe, expect, test } from "bun:test";
import { startPostgres, freePort, type PgInstance } from "./harness/postgres.ts";
import { startPgbun, type PgbunProcess } from "./harness/pgbun.ts";
import { writeConfig } from "./harness/config-file.ts";
import { errorCode, msg, RawClient } from "./harness/raw-client.ts";

let pg: PgInstance;
const started: PgbunProcess[] = [];

beforeAll(async () => {
  // log: every connection PostgreSQL receives is counted in its log (see the /healthz burst test).
  pg = await startPostgres({ log: true });
  await pg.psql("CREATE DATABASE other OWNER app");
});
afterEach(async () => {
  for (const p of started.splice(0)) await p.stop();
});
afterAll(async () => {
  await pg.stop();
});

interface Server {
  password?: string;
  dbname?: string;
  port?: number;
}

function config(statsPort: number, dbs = ["app"], extra = "", server: Server = {}): string {
  return `[pgbun]
pool_mode = "transaction"
default_pool_size = 2
stats_listen = "127.0.0.1:${statsPort}"
shutdown_timeout = 5
${extra}
${dbs
  .map(
    (d) =>
      `[databases.${d}]\nhost = "127.0.0.1"\nport = ${server.port ?? pg.port}\ndbname = "${server.dbname ?? d}"\n` +
      `user = "app"\npassword = "${server.password ?? "apppass"}"\n`,
  )
  .join("\n")}
[users.app]
password = "apppass"
`;
}

async function pgbun(text: string, file?: string): Promise<{ p: PgbunProcess; file: string }> {
  const f = writeConfig(text, file);
  const p = await startPgbun(["--config", f]);
  started.push(p);
  return { p, file: f };
}

async function queries(p: PgbunProcess, db: string, n: number): Promise<void> {
  const c = await RawClient.connect(p.port);
  await c.login("app", db, "apppass");
  for (let i = 0; i < n; i++) {
    c.send(msg.query("SELECT 1"));
    await c.untilReady();
  }
  c.close();
}

describe("HTTP endpoint", () => {
  test("/metrics passes promtool check metrics and counts the transactions sent", async () => {
    const port = await freePort();
    const { p } = await pgbun(config(port));
    await queries(p, "app", 12);
    const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
    const check = Bun.spawnSync(["promtool", "check", "metrics"], { stdin: new TextEncoder().encode(text) });
    expect(check.stdout.toString() + check.stderr.toString()).toBe("");
    expect(check.exitCode).toBe(0);
    expect(text).toContain('pgbun_pool_transactions_total{database="app",user="app"} 12');
    expect(text).toContain('pgbun_pool_server_connections{database="app",user="app",state="idle"} 1');
    expect(text).toMatch(/pgbun_process_resident_memory_bytes \d+/);
  });

  test("/stats is JSON with the same counters; reset-peak resets the peak", async () => {
    const port = await freePort();
    const { p } = await pgbun(config(port));
    await queries(p, "app", 5);
    const s = (await (await fetch(`http://127.0.0.1:${port}/stats`)).json()) as { pools: Array<Record<string, unknown>> };
    const pool = s.pools.find((x) => x.database === "app")!;
    expect(pool.total_xact_count).toBe(5);
    expect(pool.total_server_assignment_count).toBe(5);
    expect(pool.total_server_assignment_fresh).toBe(1);
    expect(pool.server_connections_opened).toBe(1);
    expect((await fetch(`http://127.0.0.1:${port}/stats/reset-peak`, { method: "POST" })).status).toBe(200);
  });

  test("/stats names the process start (started_at, run_id), so a poller sees a restart", async () => {
    const port = await freePort();
    const stats = async () => (await (await fetch(`http://127.0.0.1:${port}/stats`)).json()) as { started_at: string; run_id: string };
    const first = await pgbun(config(port));
    const a = await stats();
    expect(new Date(a.started_at).toISOString()).toBe(a.started_at);
    expect(Math.abs(Date.now() - Date.parse(a.started_at))).toBeLessThan(60_000);
    expect(a.run_id).toMatch(/^[0-9a-f-]{16,}$/);
    expect((await stats()).run_id).toBe(a.run_id);
    await first.p.stop();
    await pgbun(config(port));
    const b = await stats();
    expect(b.run_id).not.toBe(a.run_id);
    expect(Date.parse(b.started_at)).toBeGreaterThanOrEqual(Date.parse(a.started_at));
  });

  test("a worker reports the run its supervisor hands down in PGBUN_RUN, so all workers name one start", async () => {
    const port = await freePort();
    const run = { run_id: "supervisor-run", started_at: "2026-01-02T03:04:05.000Z" };
    const p = await startPgbun(["--config", writeConfig(config(port))], { env: { PGBUN_RUN: JSON.stringify(run) } });
    started.push(p);
    const s = (await (await fetch(`http://127.0.0.1:${port}/stats`)).json()) as { started_at: string; run_id: string };
    expect({ run_id: s.run_id, started_at: s.started_at }).toEqual(run);
  });

  test("/healthz is 200 while PostgreSQL is up and 503 with the error while it is down", async () => {
    const port = await freePort();
    await pgbun(config(port));
    const up = await healthWhen(port, (h) => h.status !== "starting");
    expect(up.code).toBe(200);
    expect(up.upstreams[0]!.status).toBe("up");
    await pg.stop();
    try {
      // The health monitor notices within a check interval (2 s) and a check's timeout.
      const down = await healthWhen(port, (h) => h.status === "down", 10_000);
      expect(down.code).toBe(503);
      expect(down.body.components.listener.status).toBe("up");
      expect(down.upstreams[0]!.status).toBe("down");
      expect(down.upstreams[0]!.error).toContain(`127.0.0.1:${pg.port}`);
    } finally {
      await pg.start();
    }
    const back = await healthWhen(port, (h) => h.status === "up", 10_000);
    expect(back.code).toBe(200);
  });

  test("500 concurrent /healthz requests all get 200 and open no PostgreSQL connection of their own", async () => {
    const port = await freePort();
    const { p } = await pgbun(config(port));
    await queries(p, "app", 3);
    await healthWhen(port, (h) => h.status === "up");
    // One connection of the test's own, opened before counting.
    const direct = postgres(pg.url(), { max: 1 });
    const backends = async () => Number((await direct`SELECT count(*) AS n FROM pg_stat_activity WHERE datname = 'app'`)[0]!.n);
    await backends();
    const tcpConnections = () => (readFileSync(pg.logFile, "utf8").match(/connection received: host=127\.0\.0\.1/g) ?? []).length;
    const received = tcpConnections();
    const before = await backends();
    let most = before;
    let bursting = true;
    const sampler = (async () => {
      while (bursting) {
        most = Math.max(most, await backends());
        await Bun.sleep(5);
      }
    })();
    const codes = await Promise.all(Array.from({ length: 500 }, async () => (await fetch(`http://127.0.0.1:${port}/healthz`)).status));
    bursting = false;
    await sampler;
    expect(codes.filter((c) => c !== 200)).toEqual([]);
    // Not a connection per request: at most one background login check ran meanwhile.
    expect(tcpConnections() - received).toBeLessThanOrEqual(1);
    await direct.end();
    // The pool's own servers (pool size 2) and at most one background login check.
    expect(most - before).toBeLessThanOrEqual(1);
    expect(most).toBeLessThanOrEqual(2 + 1);
  });

  test("/healthz is 503 naming the login failure when pgbun's server password is wrong, and so does a client's login", async () => {
    const port = await freePort();
    const { p } = await pgbun(config(port, ["app"], "", { password: "wrong" }));
    const h = await healthWhen(port, (x) => x.status !== "starting");
    expect(h.code).toBe(503);
    expect(h.body.status).toBe("down");
    expect(h.upstreams[0]!.error).toContain('password authentication failed for user "app"');
    expect(h.upstreams[0]!.error).toContain("28P01");
    const c = await RawClient.connect(p.port);
    const m = await c.login("app", "app", "apppass");
    expect(m.at(-1)!.tag).toBe("E");
    const again = await healthWhen(port, () => true);
    expect(again.code).toBe(503);
    expect(again.upstreams[0]!.error).toContain("password authentication failed");
  });

  test("/healthz is 503 naming the missing database when the configured dbname does not exist", async () => {
    const port = await freePort();
    await pgbun(config(port, ["app"], "", { dbname: "no_such_db" }));
    const h = await healthWhen(port, (x) => x.status !== "starting");
    expect(h.code).toBe(503);
    expect(h.upstreams[0]!.error).toContain('database "no_such_db" does not exist');
  });

  test("/healthz is 503 naming the address when nothing listens at the server's host and port", async () => {
    const port = await freePort();
    const nobody = await freePort();
    await pgbun(config(port, ["app"], "", { port: nobody }));
    const h = await healthWhen(port, (x) => x.status !== "starting");
    expect(h.code).toBe(503);
    expect(h.upstreams[0]!.error).toContain(`cannot connect to 127.0.0.1:${nobody}`);
  });

  test("/healthz stays 200 when the check is refused for too many connections while the pools hold the server's slots", async () => {
    // max_connections 5 minus 3 reserved for superusers: app's two servers fill what app may use.
    const small = await startPostgres({ maxConnections: 5 });
    try {
      const port = await freePort();
      const { p } = await pgbun(config(port, ["app"], "", { port: small.port }));
      const held: RawClient[] = [];
      for (let i = 0; i < 2; i++) {
        const c = await RawClient.connect(p.port);
        await c.login("app", "app", "apppass");
        c.send(msg.query("BEGIN"));
        expect(await c.untilReady()).toEqual(["C", "Z:T"]);
        held.push(c);
      }
      const third = await RawClient.connect(small.port);
      expect(errorCode((await third.login("app", "app", "apppass")).at(-1)!)).toBe("53300");
      // The pools' logins are recent; wait for a check of its own, refused likewise.
      await Bun.sleep(3000);
      const h = await healthWhen(port, () => true);
      expect(h.code).toBe(200);
      expect(h.upstreams[0]!.status).toBe("up");
      for (const c of held) c.close();
    } finally {
      await small.stop();
    }
  });

  test("a request without a Host header, or with a malformed one, gets a short 400 and never internals", async () => {
    const port = await freePort();
    await pgbun(config(port));
    const bad = [
      "GET /healthz HTTP/1.0\r\n\r\n",
      "GET /stats HTTP/1.0\r\n\r\n",
      "GET /healthz HTTP/1.1\r\nHost: [bad\r\nConnection: close\r\n\r\n",
      "GET /healthz HTTP/1.1\r\nHost: 127.0.0.1:99999\r\nConnection: close\r\n\r\n",
      "GET /healthz HTTP/1.1\r\nHost: a b\r\nConnection: close\r\n\r\n",
      "GET /healthz HTTP/1.1\r\nHost: user@host\r\nConnection: close\r\n\r\n",
      "GET /healthz HTTP/1.1\r\nHost: a\r\nHost: b\r\nConnection: close\r\n\r\n",
    ];
    for (const req of bad) {
      const res = await rawHttp(port, req);
      expect(res.status).toBe(400);
      expect(res.body.length).toBeLessThan(200);
      expect(res.body).not.toMatch(/<html|\.ts\b|\/src\/|\bat \S+ \(|stack/i);
    }
    const good = await rawHttp(port, "GET /stats HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n");
    expect(good.status).toBe(200);
    const v6 = await rawHttp(port, "GET /metrics?x=%zz HTTP/1.1\r\nHost: [::1]:6480\r\nConnection: close\r\n\r\n");
    expect(v6.status).toBe(200);
  });
});

/** One request over a raw socket (fetch always sends a good Host); resolves when the server closes. */
async function rawHttp(port: number, text: string): Promise<{ status: number; body: string }> {
  let out = "";
  const closed = Promise.withResolvers<void>();
  const s = await Bun.connect({
    hostname: "127.0.0.1",
    port,
    socket: {
      data: (_s, d) => void (out += new TextDecoder().decode(d)),
      close: () => closed.resolve(),
      error: () => closed.resolve(),
    },
  });
  s.write(text);
  await Promise.race([closed.promise, Bun.sleep(3000)]);
  s.end();
  const status = Number(/^HTTP\/1\.[01] (\d{3})/.exec(out)?.[1] ?? 0);
  return { status, body: out.slice(out.indexOf("\r\n\r\n") + 4) };
}

interface Upstream {
  status: string;
  error: string | null;
}
interface Health {
  code: number;
  status: string;
  body: { status: string; components: { listener: { status: string }; upstreams: Upstream[] } };
  upstreams: Upstream[];
}

/** Polls /healthz until `done` holds (or the time is up: the last answer is returned for the assertions to judge). */
async function healthWhen(port: number, done: (h: Health) => boolean, timeoutMs = 6000): Promise<Health> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const res = await fetch(`http://127.0.0.1:${port}/healthz`);
    const body = (await res.json()) as Health["body"];
    const h = { code: res.status, status: body.status, body, upstreams: body.components.upstreams };
    if (done(h) || Date.now() > deadline) return h;
    await Bun.sleep(50);
  }
}

describe("lifecycle", () => {
  test("SIGHUP re-reads the config: a new database appears, a removed one is refused, a bad file is refused and logged", async () => {
    const port = await freePort();
    const { p, file } = await pgbun(config(port, ["app"]));
    writeConfig(config(port, ["app", "other"]), file);
    p.proc.kill("SIGHUP");
    await Bun.sleep(300);
    await queries(p, "other", 1);
    writeConfig(config(port, ["other"]), file);
    p.proc.kill("SIGHUP");
    await Bun.sleep(300);
    const c = await RawClient.connect(p.port);
    const m = await c.login("app", "app", "apppass");
    expect(errorCode(m.at(-1)!)).toBe("3D000");
    writeConfig("[pgbun]\nno_such_key = 1\n", file);
    p.proc.kill("SIGHUP");
    await Bun.sleep(300);
    expect(p.output()).toContain("reload refused");
    await queries(p, "other", 1);
  });

  test("SIGTERM: no new clients, the open transaction may still COMMIT, then exit 0", async () => {
    const port = await freePort();
    const { p } = await pgbun(config(port));
    const c = await RawClient.connect(p.port);
    await c.login("app", "app", "apppass");
    c.send(msg.query("BEGIN"));
    await c.untilReady();
    p.proc.kill("SIGTERM");
    await Bun.sleep(200);
    await expect(RawClient.connect(p.port)).rejects.toThrow();
    c.send(msg.query("SELECT 1"));
    expect(await c.untilReady()).toEqual(["T", "D", "C", "Z:T"]);
    c.send(msg.query("COMMIT"));
    expect(await c.untilReady()).toEqual(["C", "Z:I"]);
    expect(await p.proc.exited).toBe(0);
  });

  test("SIGTERM: a client busy with one transaction after another is let go when the current one ends", async () => {
    const port = await freePort();
    const { p } = await pgbun(config(port));
    const sql = postgres(p.url("app", "apppass", "app"), { max: 1, prepare: false });
    let done = 0;
    let stoppedBy = "";
    const busy = (async () => {
      try {
        for (let i = 0; i < 10_000; i++) {
          await sql`SELECT pg_sleep(0.005)`;
          done++;
        }
      } catch (e) {
        stoppedBy = (e as { code?: string }).code ?? String(e);
      }
    })();
    await Bun.sleep(300);
    p.proc.kill("SIGTERM");
    const started = Date.now();
    expect(await p.proc.exited).toBe(0);
    await busy;
    // 57P01 when the FATAL is read first; otherwise the driver sees the close (CONNECTION_CLOSED, ECONNRESET)
    expect(["57P01", "CONNECTION_CLOSED", "ECONNRESET"]).toContain(stoppedBy);
    // shutdown_timeout is 5 s here; letting the busy client go at its next transaction takes far less
    expect(Date.now() - started).toBeLessThan(2500);
    expect(done).toBeGreaterThan(0);
    await sql.end({ timeout: 1 }).catch(() => {});
  });

  test("SIGINT closes at once", async () => {
    const port = await freePort();
    const { p } = await pgbun(config(port));
    const c = await RawClient.connect(p.port);
    await c.login("app", "app", "apppass");
    c.send(msg.query("BEGIN"));
    await c.untilReady();
    p.proc.kill("SIGINT");
    expect(await p.proc.exited).toBe(0);
    await c.waitClosed();
  });

  test("log_format = json writes one JSON object per line, with connection and disconnection events", async () => {
    const port = await freePort();
    const { p } = await pgbun(config(port, ["app"], 'log_format = "json"'));
    await queries(p, "app", 1);
    await Bun.sleep(100);
    const lines = p.output().split("\n").filter((l) => l.startsWith("{"));
    const events = lines.map((l) => JSON.parse(l));
    expect(events.some((e) => e.component === "client" && e.msg === "login" && e.user === "app")).toBe(true);
    expect(events.some((e) => e.msg === "disconnect" && typeof e.reason === "string")).toBe(true);
    for (const e of events) expect(typeof e.time).toBe("string");
  });
});
