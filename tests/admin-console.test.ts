// The admin console as operators use it: psql and psycopg read SHOW by column name; control commands do what PgBouncer's do.

import { afterAll, afterEach, beforeAll, describe, expect, test } from "bun:test";
import { existsSync } from "node:fs";
import { startPostgres, type PgInstance } from "./harness/postgres.ts";
import { startPgbun, type PgbunProcess } from "./harness/pgbun.ts";
import { adminQuery, writeConfig } from "./harness/config-file.ts";
import { concat, errorCode, msg, RawClient } from "./harness/raw-client.ts";

let pg: PgInstance;
let started: PgbunProcess[] = [];

function config(extra = "", poolSize = 3): string {
  return `[pgbun]
pool_mode = "transaction"
default_pool_size = ${poolSize}
admin_users = ["admin"]
stats_users = ["watcher"]

[databases.app]
host = "127.0.0.1"
port = ${pg.port}
user = "app"
password = "apppass"

[users.app]
password = "apppass"

[users.admin]
password = "adminpass"

[users.watcher]
password = "watchpass"
${extra}`;
}

async function pgbun(text = config()): Promise<{ p: PgbunProcess; file: string }> {
  const file = writeConfig(text);
  const p = await startPgbun(["--config", file]);
  started.push(p);
  return { p, file };
}

async function app(p: PgbunProcess): Promise<RawClient> {
  const c = await RawClient.connect(p.port);
  const m = await c.login("app", "app", "apppass");
  expect(m.at(-1)!.tag).toBe("Z");
  return c;
}

beforeAll(async () => {
  pg = await startPostgres();
});
afterEach(async () => {
  for (const p of started.splice(0)) await p.stop();
});
afterAll(async () => {
  await pg.stop();
});

describe("SHOW", () => {
  test("POOLS, STATS_TOTALS, CLIENTS, SERVERS, DATABASES, USERS, LISTS, CONFIG, VERSION report the traffic sent", async () => {
    const { p } = await pgbun();
    const c = await app(p);
    for (let i = 0; i < 20; i++) {
      c.send(msg.query(`SELECT ${i}`));
      await c.untilReady();
    }
    c.send(msg.query("BEGIN"));
    await c.untilReady();
    const pools = await adminQuery(p.port, "SHOW POOLS");
    const pool = pools.find((r) => r.database === "app")!;
    expect(pool.user).toBe("app");
    expect(pool.cl_active).toBe("1");
    expect(pool.sv_active).toBe("1");
    expect(pool.pool_mode).toBe("transaction");
    const totals = (await adminQuery(p.port, "SHOW STATS_TOTALS")).find((r) => r.database === "app")!;
    expect(totals.xact_count).toBe("20");
    expect(totals.query_count).toBe("21");
    expect(Number(totals.bytes_received)).toBeGreaterThan(0);
    const stats = (await adminQuery(p.port, "SHOW STATS")).find((r) => r.database === "app")!;
    expect(stats.total_xact_count).toBe("20");
    expect(Object.keys(stats)).toContain("avg_query_time");
    const clients = await adminQuery(p.port, "SHOW CLIENTS");
    expect(clients.filter((r) => r.database === "app" && r.state === "active")).toHaveLength(1);
    const servers = await adminQuery(p.port, "SHOW SERVERS");
    expect(servers.filter((r) => r.database === "app" && r.state === "active")).toHaveLength(1);
    const dbs = await adminQuery(p.port, "SHOW DATABASES");
    expect(dbs.find((r) => r.name === "app")).toMatchObject({ host: "127.0.0.1", port: String(pg.port), pool_size: "3", force_user: "app" });
    expect((await adminQuery(p.port, "SHOW USERS")).map((r) => r.name).sort()).toEqual(["admin", "app", "watcher"]);
    const lists = Object.fromEntries((await adminQuery(p.port, "SHOW LISTS")).map((r) => [r.list, r.items]));
    expect(lists.databases).toBe("1");
    expect(lists.used_servers).toBe("1");
    const cfg = Object.fromEntries((await adminQuery(p.port, "SHOW CONFIG")).map((r) => [r.key, r.value]));
    expect(cfg.pool_mode).toBe("transaction");
    expect(cfg.default_pool_size).toBe("3");
    expect((await adminQuery(p.port, "SHOW VERSION"))[0]!.version).toMatch(/^pgbun \d/);
    c.close();
  });

  test("psycopg, a client not written for pgbun, reads SHOW POOLS and SHOW STATS by column name", async () => {
    if (!existsSync("/usr/bin/python3") || Bun.spawnSync(["/usr/bin/python3", "-c", "import psycopg"]).exitCode !== 0) {
      throw new Error("python3-psycopg is needed for this test: apt-get install -y python3-psycopg (.ci/run installs it)");
    }
    const { p } = await pgbun();
    const c = await app(p);
    for (let i = 0; i < 7; i++) {
      c.send(msg.query("SELECT 1"));
      await c.untilReady();
    }
    const script = `
import psycopg, json, sys
with psycopg.connect(host="127.0.0.1", port=${p.port}, user="admin", password="adminpass", dbname="pgbouncer", autocommit=True) as conn:
    cur = conn.cursor()
    cur.execute("SHOW POOLS")
    cols = [d.name for d in cur.description]
    pools = [dict(zip(cols, r)) for r in cur.fetchall()]
    cur.execute("SHOW STATS")
    cols = [d.name for d in cur.description]
    stats = [dict(zip(cols, r)) for r in cur.fetchall()]
    print(json.dumps({"pools": pools, "stats": stats}, default=str))
`;
    const r = Bun.spawnSync(["/usr/bin/python3", "-c", script]);
    expect(r.stderr.toString()).toBe("");
    const out = JSON.parse(r.stdout.toString());
    const pool = out.pools.find((x: Record<string, unknown>) => x.database === "app");
    expect(pool.cl_idle).toBe(1);
    expect(pool.sv_idle).toBe(1);
    expect(out.stats.find((x: Record<string, unknown>) => x.database === "app").total_xact_count).toBe(7);
    c.close();
  });
});

describe("control", () => {
  test("PAUSE waits for the transaction in flight, holds new ones until RESUME", async () => {
    const { p } = await pgbun();
    const a = await app(p);
    a.send(msg.query("BEGIN"));
    await a.untilReady();
    let paused = false;
    const pausing = adminQuery(p.port, "PAUSE app").then(() => (paused = true));
    await Bun.sleep(300);
    expect(paused).toBe(false);
    a.send(msg.query("COMMIT"));
    await a.untilReady();
    await pausing;
    expect(paused).toBe(true);
    const b = await app(p);
    b.send(msg.query("SELECT 1"));
    await expect(b.untilReady(1, 300)).rejects.toThrow("timed out");
    await adminQuery(p.port, "RESUME app");
    expect(await b.untilReady(1, 3000)).toEqual(["T", "D", "C", "Z:I"]);
    a.close();
    b.close();
  });

  test("replies go out in request order: a SHOW sent in the same packet as PAUSE waits for PAUSE's reply", async () => {
    const { p } = await pgbun();
    const a = await app(p);
    a.send(msg.query("BEGIN"));
    await a.untilReady();
    const admin = await RawClient.connect(p.port);
    expect((await admin.login("admin", "pgbun", "adminpass")).at(-1)!.tag).toBe("Z");
    admin.send(concat(msg.query("PAUSE app"), msg.query("SHOW VERSION")));
    // PAUSE waits for the open transaction, and everything sent after it waits too.
    await expect(admin.untilReady(1, 300)).rejects.toThrow("timed out");
    expect(admin.received).toEqual([]);
    a.send(msg.query("COMMIT"));
    await a.untilReady();
    expect(await admin.untilReady(2, 3000)).toEqual(["C", "Z:I", "T", "D", "C", "Z:I"]);
    // A Sync sent with PAUSE is answered after PAUSE's reply too, not at once.
    admin.send(msg.query("RESUME app"));
    expect(await admin.untilReady()).toEqual(["C", "Z:I"]);
    a.send(msg.query("BEGIN"));
    await a.untilReady();
    admin.send(concat(msg.query("PAUSE app"), msg.sync()));
    await expect(admin.untilReady(1, 300)).rejects.toThrow("timed out");
    expect(admin.received).toEqual([]);
    a.send(msg.query("COMMIT"));
    await a.untilReady();
    expect(await admin.untilReady(2, 3000)).toEqual(["C", "Z:I", "Z:I"]);
    admin.send(msg.query("RESUME app"));
    expect(await admin.untilReady()).toEqual(["C", "Z:I"]);
    a.close();
    admin.close();
  });

  test("RECONNECT replaces the servers; DISABLE refuses new clients until ENABLE; KILL drops everyone", async () => {
    const { p } = await pgbun();
    const a = await app(p);
    const pid = async (c: RawClient) => {
      c.send(msg.query("SELECT pg_backend_pid()"));
      let v = "";
      for (;;) {
        const m = await c.next();
        if (m.tag === "D") v = new TextDecoder().decode(m.body.slice(6));
        if (m.tag === "Z") return v;
      }
    };
    const before = await pid(a);
    await adminQuery(p.port, "RECONNECT app");
    expect(await pid(a)).not.toBe(before);
    await adminQuery(p.port, "DISABLE app");
    const refused = await RawClient.connect(p.port);
    const m = await refused.login("app", "app", "apppass");
    expect(errorCode(m.at(-1)!)).toBe("57P03");
    await adminQuery(p.port, "ENABLE app");
    const ok = await app(p);
    await adminQuery(p.port, "KILL app");
    await a.waitClosed();
    await ok.waitClosed();
    await adminQuery(p.port, "RESUME app");
  });

  test("RELOAD applies a changed pool size, and refuses a bad config keeping the running one", async () => {
    const { p, file } = await pgbun();
    writeConfig(config("", 7), file);
    await adminQuery(p.port, "RELOAD");
    expect((await adminQuery(p.port, "SHOW DATABASES")).find((r) => r.name === "app")!.pool_size).toBe("7");
    writeConfig(config().replace('pool_mode = "transaction"', 'pool_mode = "sometimes"'), file);
    await expect(adminQuery(p.port, "RELOAD")).rejects.toThrow("pool_mode");
    expect((await adminQuery(p.port, "SHOW CONFIG")).find((r) => r.key === "pool_mode")!.value).toBe("transaction");
  });

  test("unknown commands list what is available; stats_users may only SHOW; others are refused naming the settings, not who is in them", async () => {
    const { p } = await pgbun();
    await expect(adminQuery(p.port, "FROBNICATE")).rejects.toThrow("SHOW POOLS");
    expect((await adminQuery(p.port, "SHOW POOLS", "watcher", "watchpass")).length).toBeGreaterThanOrEqual(0);
    await expect(adminQuery(p.port, "PAUSE", "watcher", "watchpass")).rejects.toThrow("permission denied");
    const refused = await adminQuery(p.port, "SHOW POOLS", "app", "apppass").then(
      () => "",
      (e: Error) => e.message,
    );
    expect(refused).toContain("permission denied for the admin console");
    expect(refused).not.toContain('"admin"');
    expect(refused).not.toContain('"watcher"');
    await expect(adminQuery(p.port, "SHOW POOLS", "admin", "wrong")).rejects.toThrow("password authentication failed");
  });

  test("SHUTDOWN exits the process", async () => {
    const { p } = await pgbun();
    await adminQuery(p.port, "SHUTDOWN").catch(() => []);
    expect(await p.proc.exited).toBe(0);
  });

  test("SHUTDOWN WAIT_FOR_CLIENTS refuses new clients and exits when the last one leaves", async () => {
    const { p } = await pgbun();
    const a = await app(p);
    await adminQuery(p.port, "SHUTDOWN WAIT_FOR_CLIENTS");
    await Bun.sleep(100);
    expect(p.proc.exitCode).toBeNull();
    await expect(RawClient.connect(p.port)).rejects.toThrow();
    a.send(msg.query("SELECT 1"));
    expect(await a.untilReady()).toEqual(["T", "D", "C", "Z:I"]);
    a.close();
    expect(await p.proc.exited).toBe(0);
  });
});
