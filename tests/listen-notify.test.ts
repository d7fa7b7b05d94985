// LISTEN/NOTIFY through transaction pooling: one listening connection per pool, notifications to every subscriber
// in order, only between transactions, never from rolled-back transactions, and never leaking to the next client.

import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import postgres from "postgres";
import { startPostgres, type PgInstance } from "./harness/postgres.ts";
import { startPgbun, type PgbunProcess } from "./harness/pgbun.ts";
import { concat, errorCode, msg, RawClient, type Msg } from "./harness/raw-client.ts";
import { freePort } from "./harness/postgres.ts";
import { writeConfig } from "./harness/config-file.ts";

let pg: PgInstance;
let bouncer: PgbunProcess;

beforeAll(async () => {
  pg = await startPostgres();
  bouncer = await startPgbun(["--upstream", pg.url("app", "apppass", "app"), "--pool-mode", "transaction", "--pool-size", "2"]);
});

afterAll(async () => {
  await bouncer.stop();
  await pg.stop();
});

const url = () => bouncer.url("app", "apppass", "app");

async function until(cond: () => boolean, ms = 5000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error("condition not met in time");
    await Bun.sleep(10);
  }
}

/** A NotificationResponse's fields. */
function notification(m: Msg): { pid: number; channel: string; payload: string } {
  const pid = new DataView(m.body.buffer, m.body.byteOffset).getInt32(0);
  const text = new TextDecoder().decode(m.body.subarray(4));
  const [channel, payload] = text.split("\0");
  return { pid, channel: channel!, payload: payload! };
}

async function rawClient(): Promise<RawClient> {
  const c = await RawClient.connect(bouncer.port);
  await c.login("app", "app", "apppass");
  return c;
}

test("postgres.js: five listeners on a pool of two each get every notification, in order, with the sender's pid", async () => {
  const listeners = Array.from({ length: 5 }, () => postgres(url(), { max: 1 }));
  const got: string[][] = listeners.map(() => []);
  await Promise.all(listeners.map((sql, i) => sql.listen("jobs", (payload) => got[i]!.push(payload))));
  const sender = postgres(url(), { max: 1 });
  const pids: number[] = [];
  for (let i = 0; i < 20; i++) {
    const [row] = await sender.begin(async (tx) => {
      await tx`SELECT pg_notify('jobs', ${"job " + i})`;
      return tx`SELECT pg_backend_pid() AS pid`;
    });
    pids.push(row!.pid as number);
  }
  await until(() => got.every((g) => g.length === 20));
  const want = Array.from({ length: 20 }, (_, i) => "job " + i);
  for (const g of got) expect(g).toEqual(want);
  // the pid is PostgreSQL's: check it with a raw listener
  const raw = await rawClient();
  raw.send(msg.query("LISTEN jobs"));
  expect(await raw.untilReady()).toEqual(["C", "Z:I"]);
  const [row] = await sender.begin(async (tx) => {
    await tx`NOTIFY jobs, 'with pid'`;
    return tx`SELECT pg_backend_pid() AS pid`;
  });
  const n = notification(await raw.next());
  expect(n).toEqual({ pid: row!.pid as number, channel: "jobs", payload: "with pid" });
  raw.close();
  await Promise.all([...listeners, sender].map((s) => s.end()));
});

test("a notification sent in a rolled-back transaction is never delivered; UNLISTEN stops delivery", async () => {
  const raw = await rawClient();
  raw.send(msg.query("LISTEN a; LISTEN b"));
  expect(await raw.untilReady()).toEqual(["C", "C", "Z:I"]);
  const sender = postgres(url(), { max: 1 });
  await sender`BEGIN`.catch(() => {});
  await sender.begin(async (tx) => {
    await tx`NOTIFY a, 'rolled back'`;
    await tx`ROLLBACK`.catch(() => {});
    throw new Error("roll back");
  }).catch(() => {});
  await sender`NOTIFY a, 'kept'`;
  const n = notification(await raw.next());
  expect(n.payload).toBe("kept");
  raw.send(msg.query("UNLISTEN a"));
  expect(await raw.untilReady()).toEqual(["C", "Z:I"]);
  await sender`NOTIFY a, 'after unlisten'`;
  await sender`NOTIFY b, 'still on b'`;
  const next = notification(await raw.next());
  expect(next).toMatchObject({ channel: "b", payload: "still on b" });
  raw.send(msg.query("UNLISTEN *"));
  expect(await raw.untilReady()).toEqual(["C", "Z:I"]);
  await sender`NOTIFY b, 'after unlisten all'`;
  await Bun.sleep(200);
  expect(raw.received).toEqual([]);
  raw.close();
  await sender.end();
});

test("a LISTEN inside a rolled-back transaction never takes effect; one inside a committed one does", async () => {
  const raw = await rawClient();
  raw.send(msg.query("BEGIN; LISTEN gone; ROLLBACK"));
  await raw.untilReady();
  raw.send(msg.query("BEGIN; LISTEN kept; COMMIT"));
  await raw.untilReady();
  const sender = postgres(url(), { max: 1 });
  await sender`NOTIFY gone, 'x'`;
  await sender`NOTIFY kept, 'y'`;
  const n = notification(await raw.next());
  expect(n).toMatchObject({ channel: "kept", payload: "y" });
  await sender`NOTIFY gone, 'x2'`;
  await Bun.sleep(150);
  expect(raw.received).toEqual([]);
  raw.close();
  await sender.end();
});

test("a client in a transaction gets notifications only when it ends, never inside a reply", async () => {
  const raw = await rawClient();
  raw.send(msg.query("LISTEN during"));
  await raw.untilReady();
  raw.send(msg.query("BEGIN"));
  expect(await raw.untilReady()).toEqual(["C", "Z:T"]);
  const sender = postgres(url(), { max: 1 });
  await sender`NOTIFY during, 'one'`;
  await Bun.sleep(150);
  expect(raw.received).toEqual([]);
  raw.send(msg.query("SELECT 1"));
  expect(await raw.untilReady()).toEqual(["T", "D", "C", "Z:T"]);
  raw.send(msg.query("COMMIT"));
  expect(await raw.untilReady()).toEqual(["C", "Z:I"]);
  expect(notification(await raw.next()).payload).toBe("one");
  raw.close();
  await sender.end();
});

test("extended protocol LISTEN (Parse/Bind/Execute) works too", async () => {
  const raw = await rawClient();
  raw.send(concat(msg.parse("", 'LISTEN "Ext Chan"'), msg.bind("", ""), msg.execute(), msg.sync()));
  expect(await raw.untilReady()).toEqual(["1", "2", "C", "Z:I"]);
  const sender = postgres(url(), { max: 1 });
  await sender`SELECT pg_notify('Ext Chan', 'quoted')`;
  expect(notification(await raw.next())).toMatchObject({ channel: "Ext Chan", payload: "quoted" });
  raw.close();
  await sender.end();
});

test("LISTEN never leaks: the next client on that server hears nothing and sees no channels", async () => {
  const one = await RawClient.connect(bouncer.port);
  await one.login("app", "app", "apppass");
  one.send(msg.query("LISTEN leak; SELECT pg_backend_pid()"));
  await one.untilReady();
  one.close();
  // Every server of the pool: none listens on anything.
  const sql = postgres(url(), { max: 1, prepare: false });
  for (let i = 0; i < 6; i++) {
    const rows = await sql`SELECT count(*)::int AS n FROM pg_listening_channels()`;
    expect(rows[0]!.n).toBe(0);
  }
  await sql.end();
});

test("psycopg's notifies() receives through transaction pooling", async () => {
  const script = `
import psycopg, sys
conn = psycopg.connect(sys.argv[1], autocommit=True)
conn.execute("LISTEN py")
print("ready", flush=True)
got = []
for n in conn.notifies():
    got.append(n.payload)
    if len(got) == 3:
        break
print(",".join(got), flush=True)
`;
  const proc = Bun.spawn(["/usr/bin/python3", "-c", script, `host=127.0.0.1 port=${bouncer.port} dbname=app user=app password=apppass`], {
    stdout: "pipe",
    stderr: "pipe",
  });
  const reader = proc.stdout.getReader();
  let out = "";
  while (!out.includes("ready")) {
    const { value, done } = await reader.read();
    if (done) break;
    out += new TextDecoder().decode(value);
  }
  expect(out).toContain("ready");
  const sender = postgres(url(), { max: 1 });
  for (const p of ["x", "y", "z"]) await sender`SELECT pg_notify('py', ${p})`;
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    out += new TextDecoder().decode(value);
  }
  const timer = setTimeout(() => proc.kill(), 10_000);
  await proc.exited;
  clearTimeout(timer);
  expect(out.trim().split("\n").at(-1)).toBe("x,y,z");
  await sender.end();
});

test("a listener that holds a transaction open is disconnected once too many notifications wait; the others get everything", async () => {
  const slow = await rawClient();
  slow.send(msg.query("LISTEN flood"));
  await slow.untilReady();
  // In a transaction its notifications wait for it (as PostgreSQL holds them until the transaction ends)
  slow.send(msg.query("BEGIN"));
  expect(await slow.untilReady()).toEqual(["C", "Z:T"]);
  const fast = await rawClient();
  fast.send(msg.query("LISTEN flood"));
  await fast.untilReady();
  const sender = postgres(url(), { max: 1 });
  // Distinct payloads: PostgreSQL folds identical notifications of one transaction into one.
  await sender`SELECT pg_notify('flood', 'n' || g) FROM generate_series(1, 1500) AS g`;
  await until(() => fast.received.filter((m) => m.tag === "A").length === 1500, 20_000);
  await slow.waitClosed(10_000);
  expect(slow.received.filter((m) => m.tag === "E").map(errorCode)).toEqual(["54000"]);
  fast.close();
  await sender.end();
});

test("the listening connection killed: subscribers are told and postgres.js listens again; delivery resumes", async () => {
  const sql = postgres(url(), { max: 1 });
  const got: string[] = [];
  await sql.listen("phoenix", (p) => got.push(p));
  const raw = await rawClient();
  raw.send(msg.query("LISTEN phoenix"));
  await raw.untilReady();
  await pg.psql("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE query ILIKE 'LISTEN%phoenix%'");
  await raw.waitClosed();
  const told = raw.received.filter((m) => m.tag === "E").map(errorCode);
  expect(told).toEqual(["08006"]);
  const sender = postgres(url(), { max: 1 });
  await until(() => {
    void sender`SELECT pg_notify('phoenix', 'again')`.catch(() => {});
    return got.includes("again");
  }, 10_000);
  await Promise.all([sql.end(), sender.end()]);
});

test("Bun.sql's listen receives through transaction pooling", async () => {
  const sql = new Bun.SQL(url());
  const got: string[] = [];
  await sql.listen("bunsql", (payload: string) => got.push(payload));
  const sender = postgres(url(), { max: 1 });
  for (const p of ["1", "2", "3"]) await sender`SELECT pg_notify('bunsql', ${p})`;
  await until(() => got.length === 3);
  expect(got).toEqual(["1", "2", "3"]);
  await sender.end();
  await sql.close();
});

test("PostgreSQL restarted: listeners are told notifications may be lost; a new LISTEN brings the listening connection back", async () => {
  const before = await rawClient();
  before.send(msg.query("LISTEN restart"));
  await before.untilReady();
  await pg.restart();
  await before.waitClosed(10_000);
  expect(before.received.filter((m) => m.tag === "E").map(errorCode)).toEqual(["08006"]);
  // As an application would: connect again and LISTEN, retrying while the pool refills.
  let after: RawClient | null = null;
  for (let i = 0; i < 50 && after === null; i++) {
    const c = await rawClient().catch(() => null);
    if (c !== null) {
      c.send(msg.query("LISTEN restart"));
      const tags = await c.untilReady().catch(() => ["lost"]);
      if (tags.join() === "C,Z:I") after = c;
      else c.close();
    }
    if (after === null) await Bun.sleep(200);
  }
  expect(after).not.toBeNull();
  const sender = postgres(url(), { max: 1 });
  await sender`NOTIFY restart, 'after'`;
  expect(notification(await after!.next())).toMatchObject({ channel: "restart", payload: "after" });
  after!.close();
  await sender.end();
});

describe("NOTIFY streams over HTTP", () => {
  let p: PgbunProcess;
  let http = 0;
  const TOKEN = "listen-secret-1";

  beforeAll(async () => {
    http = await freePort();
    const file = writeConfig(`[pgbun]
pool_mode = "transaction"
default_pool_size = 2
stats_listen = "127.0.0.1:${http}"
[databases.app]
host = "127.0.0.1"
port = ${pg.port}
dbname = "app"
user = "app"
password = "apppass"
listen_token = "${TOKEN}"
[databases.closed]
host = "127.0.0.1"
port = ${pg.port}
dbname = "app"
user = "app"
password = "apppass"
[users.app]
password = "apppass"
`);
    p = await startPgbun(["--config", file]);
  });

  afterAll(async () => {
    await p.stop();
  });

  const notifyThrough = async (channel: string, payloads: string[]) => {
    const sql = postgres(p.url("app", "apppass", "app"), { max: 1 });
    for (const x of payloads) await sql`SELECT pg_notify(${channel}, ${x})`;
    await sql.end();
  };

  test("Server-Sent Events: every NOTIFY sent through pgbun arrives in order, with channel, payload and pid", async () => {
    const res = await fetch(`http://127.0.0.1:${http}/listen/orders?database=app`, { headers: { authorization: `Bearer ${TOKEN}` } });
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toBe("text/event-stream");
    const reader = res.body!.getReader();
    let text = "";
    const read = async (until: (t: string) => boolean) => {
      const end = Date.now() + 5000;
      while (!until(text)) {
        if (Date.now() > end) throw new Error("stream stalled: " + text);
        const { value, done } = await reader.read();
        if (done) break;
        text += new TextDecoder().decode(value);
      }
    };
    await read((t) => t.includes("event: listening"));
    await notifyThrough("orders", ["one", "two", "three"]);
    await read((t) => (t.match(/event: notification/g) ?? []).length === 3);
    const events = [...text.matchAll(/event: notification\ndata: (.*)\n/g)].map((m) => JSON.parse(m[1]!));
    expect(events.map((e) => e.payload)).toEqual(["one", "two", "three"]);
    for (const e of events) {
      expect(e.channel).toBe("orders");
      expect(e.pid).toBeGreaterThan(0);
      expect(typeof e.time).toBe("string");
    }
    await reader.cancel();
  });

  test("WebSocket: the same notifications as JSON messages, in order", async () => {
    const ws = new WebSocket(`ws://127.0.0.1:${http}/listen/ws%20chan?database=app&token=${TOKEN}`);
    const got: Array<Record<string, unknown>> = [];
    ws.onmessage = (e) => got.push(JSON.parse(String(e.data)));
    const end = Date.now() + 5000;
    while (!got.some((m) => m.listening === "ws chan")) {
      if (Date.now() > end) throw new Error("no listening message");
      await Bun.sleep(10);
    }
    await notifyThrough("ws chan", ["a", "b", "c", "d"]);
    while (got.filter((m) => m.payload !== undefined).length < 4) {
      if (Date.now() > end + 5000) throw new Error("missing notifications: " + JSON.stringify(got));
      await Bun.sleep(10);
    }
    expect(got.filter((m) => m.payload !== undefined).map((m) => m.payload)).toEqual(["a", "b", "c", "d"]);
    ws.close();
  });

  test("without the token, or for a database without listen_token, the endpoint refuses", async () => {
    expect((await fetch(`http://127.0.0.1:${http}/listen/orders?database=app`)).status).toBe(401);
    expect((await fetch(`http://127.0.0.1:${http}/listen/orders?database=app&token=wrong`)).status).toBe(401);
    const closed = await fetch(`http://127.0.0.1:${http}/listen/orders?database=closed&token=${TOKEN}`);
    expect(closed.status).toBe(403);
    expect(await closed.text()).toContain("listen_token");
    expect((await fetch(`http://127.0.0.1:${http}/listen/orders?database=nope&token=${TOKEN}`)).status).toBe(404);
  });

  test("/metrics counts listeners and delivered notifications", async () => {
    const text = await (await fetch(`http://127.0.0.1:${http}/metrics`)).text();
    expect(text).toMatch(/pgbun_pool_notifications_delivered_total\{[^}]*\} [1-9]/);
    expect(text).toContain("pgbun_pool_listen_subscribers");
    expect(text).toContain("pgbun_pool_clients_pinned");
  });
});
