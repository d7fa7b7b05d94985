// The HTTP endpoint (checked with promtool) and the process lifecycle: SIGHUP reload, SIGTERM drain, SIGINT, log formats.

import { afterAll, afterEach, beforeAll, describe, expect, test } from "bun:test";
import { startPostgres, freePort, type PgInstance } from "./harness/postgres.ts";
import { startPgbun, type PgbunProcess } from "./harness/pgbun.ts";
import { writeConfig } from "./harness/config-file.ts";
import { errorCode, msg, RawClient } from "./harness/raw-client.ts";

let pg: PgInstance;
const started: PgbunProcess[] = [];

beforeAll(async () => {
  pg = await startPostgres();
  await pg.psql("CREATE DATABASE other OWNER app");
});
afterEach(async () => {
  for (const p of started.splice(0)) await p.stop();
});
afterAll(async () => {
  await pg.stop();
});

function config(statsPort: number, dbs = ["app"], extra = ""): string {
  return `[pgbun]
pool_mode = "transaction"
default_pool_size = 2
stats_listen = "127.0.0.1:${statsPort}"
shutdown_timeout = 5
${extra}
${dbs.map((d) => `[databases.${d}]\nhost = "127.0.0.1"\nport = ${pg.port}\nuser = "app"\npassword = "apppass"\n`).join("\n")}
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

  test("/healthz is 200 while PostgreSQL is up and 503 with the error while it is down", async () => {
    const port = await freePort();
    await pgbun(config(port));
    const up = await fetch(`http://127.0.0.1:${port}/healthz`);
    expect(up.status).toBe(200);
    expect(((await up.json()) as { components: { upstreams: Array<{ status: string }> } }).components.upstreams[0]!.status).toBe("up");
    await pg.stop();
    try {
      const down = await fetch(`http://127.0.0.1:${port}/healthz`);
      expect(down.status).toBe(503);
      const body = (await down.json()) as { components: { listener: { status: string }; upstreams: Array<{ status: string; error: string }> } };
      expect(body.components.listener.status).toBe("up");
      expect(body.components.upstreams[0]!.status).toBe("down");
      expect(body.components.upstreams[0]!.error).toBeTruthy();
    } finally {
      await pg.start();
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
