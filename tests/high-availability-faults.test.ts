// What goes wrong in a cluster and what pgbun does: a lagging replica, replicas down, no primary at all, a host that is
// in recovery behind pgbun's back, two primaries at once, Patroni's say, and a reload that changes the hosts.

import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import postgres from "postgres";
import { adminQuery, writeConfig } from "./harness/config-file.ts";
import { startPgbun, type PgbunProcess } from "./harness/pgbun.ts";
import { startPostgres, type PgInstance } from "./harness/postgres.ts";
import { errorCode, errorMessage, msg, RawClient } from "./harness/raw-client.ts";
import { promote, rejoinAsReplica, startReplica, waitCaughtUp } from "./harness/replica.ts";

const host = (pg: PgInstance) => `127.0.0.1:${pg.port}`;

function config(hosts: string, extra = "", databases = ""): string {
  return `[pgbun]
pool_mode = "transaction"
default_pool_size = 3
admin_users = "admin"
${extra}

[databases.app]
host = "${hosts}"
dbname = "app"
user = "app"
password = "apppass"
${databases}

[users.app]
password = "apppass"
[users.admin]
password = "adminpass"
`;
}

async function port(sql: postgres.Sql): Promise<number> {
  return (await sql`SELECT inet_server_port() AS port`)[0]!.port as number;
}

async function until<T>(what: string, f: () => Promise<T | null | undefined | false>, ms = 15_000): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await f().catch(() => null);
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await Bun.sleep(50);
  }
}

async function hostRow(bouncer: PgbunProcess, pg: PgInstance): Promise<Record<string, string>> {
  return (await adminQuery(bouncer.port, "SHOW HOSTS")).find((h) => h.database === "app" && Number(h.port) === pg.port)!;
}

/** One simple query on a raw connection: the first column of the first row, or the error. */
async function ask(c: RawClient, sql: string): Promise<{ value?: string; code?: string; message?: string }> {
  c.send(msg.query(sql));
  const out: { value?: string; code?: string; message?: string } = {};
  for (;;) {
    // A FATAL ends the connection with no ReadyForQuery.
    const m = await c.next(20_000).catch((err: Error) => {
      if (out.code !== undefined) return null;
      throw err;
    });
    if (m === null) return out;
    if (m.tag === "D" && out.value === undefined) out.value = new TextDecoder().decode(m.body.subarray(6));
    if (m.tag === "E") {
      out.code = errorCode(m);
      out.message = errorMessage(m);
    }
    if (m.tag === "Z") return out;
  }
}

describe("replica lag, replicas down, no primary", () => {
  let primary: PgInstance;
  let replica: PgInstance;
  let bouncer: PgbunProcess;
  let cfg: string;

  beforeAll(async () => {
    primary = await startPostgres();
    await primary.psql("CREATE TABLE filler (b text)", { db: "app" });
    await primary.psql("GRANT ALL ON filler TO app", { db: "app" });
    replica = await startReplica(primary);
    const db = (name: string, reads: string) => `
[databases.${name}]
host = "${host(primary)},${host(replica)}"
dbname = "app"
user = "app"
password = "apppass"
role = "replica"
primary_reads = ${reads}
`;
    cfg = writeConfig(config(`${host(primary)},${host(replica)}`, `role_check_interval = 0.2\nmax_replica_lag = "64kB"\nban_timeout = 30\nprimary_wait_timeout = 1.5`, db("strict", "false")));
    bouncer = await startPgbun(["--config", cfg]);
  });
  afterAll(async () => {
    await bouncer.stop();
  });

  test("a replica further behind than max_replica_lag gets no reads until it catches up; reads fall back to the primary meanwhile", async () => {
    const ro = postgres(bouncer.url("app", "apppass", "app_ro"), { max: 1 });
    try {
      expect(await port(ro)).toBe(replica.port);
      await replica.psql("SELECT pg_wal_replay_pause()");
      await primary.psql("INSERT INTO filler SELECT repeat('x', 1000) FROM generate_series(1, 1000)", { db: "app" });
      const lagging = await until("the replica seen lagging", async () => {
        const h = await hostRow(bouncer, replica);
        return h.state === "lagging" ? h : null;
      });
      expect(Number(lagging.lag_bytes)).toBeGreaterThan(64 * 1024);
      expect(await port(ro)).toBe(primary.port);
      expect(bouncer.output()).toContain("replica lags more than max_replica_lag");
      await replica.psql("SELECT pg_wal_replay_resume()");
      await waitCaughtUp(primary, replica);
      await until("reads back on the replica", async () => (await port(ro)) === replica.port);
    } finally {
      await ro.end();
    }
  });

  test("with every replica down, reads fall back to the primary; primary_reads = false waits, then names primary_wait_timeout", async () => {
    const ro = postgres(bouncer.url("app", "apppass", "app_ro"), { max: 1 });
    const strict = await RawClient.connect(bouncer.port);
    try {
      await strict.login("app", "strict", "apppass");
      await replica.stop("fast");
      await until("the replica seen down", async () => (await hostRow(bouncer, replica)).state === "down");
      expect(await port(ro)).toBe(primary.port);
      const started = Date.now();
      const r = await ask(strict, "SELECT 1");
      expect(Date.now() - started).toBeGreaterThanOrEqual(1000);
      expect(r.code).toBe("57P03");
      expect(r.message).toContain("primary_wait_timeout");
      expect(r.message).toContain("primary_reads = false");
    } finally {
      await ro.end();
      strict.close();
      await replica.start();
    }
  });

  test("with no primary, a write waits up to primary_wait_timeout and then gets an error naming it; clients between transactions stay", async () => {
    const c = await RawClient.connect(bouncer.port);
    await c.login("app", "app", "apppass");
    expect((await ask(c, "SELECT 1")).value).toBe("1");
    const idle = await RawClient.connect(bouncer.port);
    await idle.login("app", "app", "apppass");
    await primary.stop("fast");
    const started = Date.now();
    const r = await ask(c, "SELECT 2");
    expect(Date.now() - started).toBeGreaterThanOrEqual(1000);
    expect(r.code).toBe("57P03");
    expect(r.message).toContain('pgbun: primary_wait_timeout: no primary of database "app" could be reached within 1.5s');
    expect(r.message).toContain(`${host(primary)} primary down`);
    // The primary comes back: the client that sat between transactions meanwhile carries on, on the same connection.
    await primary.start();
    expect((await ask(idle, "SELECT inet_server_port()")).value).toBe(String(primary.port));
    idle.close();
  });
});

describe("a host whose role changes behind pgbun's back", () => {
  let a: PgInstance;
  let b: PgInstance;
  let bouncer: PgbunProcess;

  beforeAll(async () => {
    a = await startPostgres();
    b = await startReplica(a);
    // Checks only at start and when something hints at a change: what follows is found by the servers' own hints.
    bouncer = await startPgbun(["--config", writeConfig(config(`${host(a)},${host(b)}`, "role_check_interval = 3600\nban_timeout = 0"))]);
  });
  afterAll(async () => {
    await bouncer.stop();
  });

  test("25006 read_only_sql_transaction from a server checks its host again at once", async () => {
    const sql = postgres(bouncer.url("app", "apppass", "app"), { max: 1 });
    try {
      expect(await port(sql)).toBe(a.port);
      const before = (await hostRow(bouncer, a)).last_check;
      await Bun.sleep(1100);
      const err = await sql.begin("read only", (tx) => tx`CREATE TABLE t25006 (x int)`).catch((e: { code?: string }) => e.code);
      expect(err).toBe("25006");
      await until("a new check of the primary", async () => (await hostRow(bouncer, a)).last_check !== before);
      expect((await hostRow(bouncer, a)).role).toBe("primary");
    } finally {
      await sql.end();
    }
  });

  test("a server that logs in to a host now in recovery is never given a write: the write waits for the real primary", async () => {
    // a stops, b is promoted and a comes back as b's replica, all unseen: no check runs (role_check_interval = 3600).
    await a.stop("fast");
    await promote(b);
    await rejoinAsReplica(a, b);
    expect((await hostRow(bouncer, a)).role).toBe("primary");
    await b.psql("CREATE TABLE after_rejoin (x int); GRANT ALL ON after_rejoin TO app", { db: "app" });
    const rw = postgres(bouncer.url("app", "apppass", "app"), { max: 1 });
    try {
      // Without the check at login (in_hot_standby), this write would reach a and fail with 25006.
      const [row] = await rw`INSERT INTO after_rejoin VALUES (1) RETURNING inet_server_port() AS port`;
      expect(row!.port).toBe(b.port);
      const hosts = await adminQuery(bouncer.port, "SHOW HOSTS");
      expect(hosts.filter((h) => h.database === "app").map((h) => [Number(h.port), h.role])).toEqual([
        [a.port, "replica"],
        [b.port, "primary"],
      ]);
      expect(bouncer.output()).toContain("the primary is in recovery now (demoted)");
    } finally {
      await rw.end();
    }
  });

  test("split brain: a second host out of recovery gets nothing while the primary answers, and is logged until one steps down", async () => {
    const ro = postgres(bouncer.url("app", "apppass", "app_ro"), { max: 1 });
    const rw = postgres(bouncer.url("app", "apppass", "app"), { max: 1 });
    try {
      await until("reads on the replica a", async () => (await port(ro)) === a.port);
      // a leaves recovery while b still runs: the next query on a server of a hears in_hot_standby = off, and a is checked.
      await promote(a);
      await until("a seen as a second primary", async () => {
        await port(ro);
        return (await hostRow(bouncer, a)).state === "split_brain";
      });
      expect(bouncer.output()).toContain("split brain: two hosts claim to be primary");
      for (let i = 0; i < 3; i++) expect(await port(rw)).toBe(b.port);
      // Reads no longer go to a either: it is not a replica any more, and not the primary pgbun follows.
      expect(await port(ro)).toBe(b.port);
    } finally {
      await Promise.all([ro.end(), rw.end()]);
    }
  });
});

describe("reload and Patroni", () => {
  let a: PgInstance;
  let b: PgInstance;
  let bouncer: PgbunProcess;
  let cfgPath: string;
  /** The tiny Patroni-like REST endpoint: GET /NAME/primary answers 200 only for the leader. */
  let leader = "a";
  const patroni = Bun.serve({
    port: 0,
    hostname: "127.0.0.1",
    fetch: (req) => new Response(null, { status: new URL(req.url).pathname === `/${leader}/primary` ? 200 : 503 }),
  });
  const url = (name: string) => `"http://127.0.0.1:${patroni.port}/${name}"`;
  const cfg = (hosts: PgInstance[]) =>
    config(
      hosts.map(host).join(","),
      "role_check_interval = 0.2\nprimary_wait_timeout = 10\nban_timeout = 0",
      `patroni_url = [${hosts.map((h) => url(h === a ? "a" : "b")).join(", ")}]`,
    );

  beforeAll(async () => {
    a = await startPostgres();
    b = await startReplica(a);
    cfgPath = writeConfig(cfg([a, b]));
    bouncer = await startPgbun(["--config", cfgPath]);
  });
  afterAll(async () => {
    await bouncer.stop();
    patroni.stop(true);
  });

  test("RELOAD removes and adds a host without dropping a client", async () => {
    const rw = await RawClient.connect(bouncer.port);
    await rw.login("app", "app", "apppass");
    const ro = await RawClient.connect(bouncer.port);
    await ro.login("app", "app_ro", "apppass");
    expect((await ask(ro, "SELECT inet_server_port()")).value).toBe(String(b.port));
    writeConfig(cfg([a]), cfgPath);
    await adminQuery(bouncer.port, "RELOAD");
    expect((await adminQuery(bouncer.port, "SHOW HOSTS")).map((h) => Number(h.port))).toEqual([a.port]);
    // The replica is gone: reads fall back to the primary, on the same connections.
    expect((await ask(ro, "SELECT inet_server_port()")).value).toBe(String(a.port));
    expect((await ask(rw, "SELECT inet_server_port()")).value).toBe(String(a.port));
    writeConfig(cfg([a, b]), cfgPath);
    await adminQuery(bouncer.port, "RELOAD");
    await until("reads on the added replica", async () => (await ask(ro, "SELECT inet_server_port()")).value === String(b.port));
    expect((await ask(rw, "SELECT inet_server_port()")).value).toBe(String(a.port));
    expect(ro.closed || rw.closed).toBe(false);
    ro.close();
    rw.close();
  });

  test("a host out of recovery gets writes only once Patroni calls it the leader", async () => {
    await b.psql("SELECT 1");
    await a.stop("fast");
    await promote(b);
    await until("b out of recovery but not the leader", async () => (await hostRow(bouncer, b)).state === "unconfirmed");
    const c = await RawClient.connect(bouncer.port);
    await c.login("app", "app", "apppass");
    let answered = false;
    const write = ask(c, "SELECT inet_server_port()").then((r) => ((answered = true), r));
    await Bun.sleep(600);
    expect(answered).toBe(false);
    expect((await hostRow(bouncer, b)).patroni).toBe("not-leader");
    leader = "b";
    const r = await write;
    expect(r.code).toBeUndefined();
    expect(r.value).toBe(String(b.port));
    expect((await hostRow(bouncer, b)).role).toBe("primary");
    c.close();
  });
});
