// The fault proxy in front of a real PostgreSQL: it forwards faithfully, and each fault does what it says to the right connection.

import { afterAll, beforeAll, expect, test } from "bun:test";
import { FaultProxy } from "./fault-proxy.ts";
import { startPostgres, type PgInstance } from "./postgres.ts";
import { msg, RawClient } from "./raw-client.ts";

let pg: PgInstance;
let proxy: FaultProxy;

beforeAll(async () => {
  pg = await startPostgres({ maxConnections: 30 });
  proxy = FaultProxy.start({ host: pg.host, port: pg.port });
});

afterAll(async () => {
  proxy?.stop();
  await pg?.stop();
});

async function login(): Promise<RawClient> {
  const c = await RawClient.connect(proxy.port);
  const seen = await c.login("app", "app", "apppass");
  expect(seen.at(-1)!.tag).toBe("Z");
  return c;
}

/** Sends one simple query and returns its first column of the first row (null if none) once ReadyForQuery arrives. */
async function ask(c: RawClient, sql: string, timeoutMs = 5000): Promise<string | null> {
  c.send(msg.query(sql));
  let value: string | null = null;
  for (;;) {
    const m = await c.next(timeoutMs);
    if (m.tag === "D" && value === null) value = new TextDecoder().decode(m.body.subarray(6));
    if (m.tag === "E") throw new Error("error response");
    if (m.tag === "Z") return value;
  }
}

const backends = async () => Number(await pg.psql("SELECT count(*) FROM pg_stat_activity WHERE usename = 'app'"));

async function until(cond: () => Promise<boolean> | boolean, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await cond())) {
    if (Date.now() > deadline) throw new Error("condition not met in time");
    await Bun.sleep(20);
  }
}

test("forwards a session unchanged and reads the backend's pid from BackendKeyData", async () => {
  const c = await login();
  const pid = Number(await ask(c, "SELECT pg_backend_pid()"));
  expect(proxy.select("newest")[0]!.backendPid).toBe(pid);
  expect(proxy.select({ backendPid: pid })).toHaveLength(1);
  // 8 MB back through the proxy, every byte: partial writes and the read pause both take part.
  c.countDataRows = true;
  const bytesBefore = c.bytes;
  c.send(msg.query("SELECT repeat('x', 1000) || g FROM generate_series(1, 8000) g"));
  expect(await c.untilReady(1, 10_000)).toEqual(["T", "C", "Z:I"]);
  expect(c.dataRows).toBe(8000);
  // Each DataRow: tag, length, column count, column length, then 1000 x's and the digits of g (30,893 in all).
  const rows = 8000 * (1 + 4 + 2 + 4 + 1000) + 30893;
  // ...plus RowDescription, CommandComplete and ReadyForQuery, well under 100 bytes.
  expect(c.bytes - bytesBefore - rows).toBeWithin(0, 100);
  c.countDataRows = false;
  c.close();
  await until(() => proxy.select({ backendPid: pid }).length === 0);
});

test("delay holds each chunk back by the given time, in order", async () => {
  const c = await login();
  proxy.delay("newest", 150, "down");
  const started = Date.now();
  expect(await ask(c, "SELECT 41 + 1")).toBe("42");
  expect(Date.now() - started).toBeGreaterThanOrEqual(140);
  proxy.delay("newest", 0);
  c.close();
});

test("stall stops a direction until resume; nothing is lost", async () => {
  const c = await login();
  const idx = proxy.select("newest")[0]!.index;
  proxy.stall({ index: idx }, "down");
  const answer = ask(c, "SELECT 'after the stall'");
  await Bun.sleep(200);
  expect(c.received).toHaveLength(0);
  proxy.resume({ index: idx }, "down");
  expect(await answer).toBe("after the stall");
  c.close();
});

test("reset sends an RST both ways: the client sees the close, PostgreSQL ends the backend", async () => {
  const before = await backends();
  const c = await login();
  await until(async () => (await backends()) === before + 1);
  expect(proxy.reset("newest")).toBe(1);
  await c.waitClosed();
  await until(async () => (await backends()) === before);
});

test("drop closes both sides politely", async () => {
  const before = await backends();
  const c = await login();
  proxy.drop({ carrying: "SCRAM" });
  await c.waitClosed();
  await until(async () => (await backends()) === before);
});

test("half-closing upward gives PostgreSQL an EOF, which ends the session and closes the client", async () => {
  const c = await login();
  const pid = Number(await ask(c, "SELECT pg_backend_pid()"));
  proxy.halfClose({ backendPid: pid }, "up");
  await c.waitClosed();
  await until(async () => (await pg.psql(`SELECT count(*) FROM pg_stat_activity WHERE pid = ${pid}`)) === "0");
});

test("half-closing downward gives the client an EOF; its close then ends the PostgreSQL session", async () => {
  const c = await login();
  const pid = Number(await ask(c, "SELECT pg_backend_pid()"));
  proxy.halfClose({ backendPid: pid }, "down");
  await c.waitClosed();
  // The client's socket closed on the FIN (Bun's default); that close reaches PostgreSQL as an EOF.
  await until(async () => (await pg.psql(`SELECT count(*) FROM pg_stat_activity WHERE pid = ${pid}`)) === "0");
});

test("targets: all, oldest, newest, by index and by what a connection carries", async () => {
  const a = await login();
  const b = await login();
  const open = proxy.select("all");
  expect(open.length).toBeGreaterThanOrEqual(2);
  expect(proxy.select("newest")[0]!.index).toBeGreaterThan(proxy.select("oldest")[0]!.index);
  const slow = ask(b, "SELECT 'marker-7f3a', pg_sleep(0.3)");
  await until(() => proxy.select({ carrying: "marker-7f3a" }).length === 1);
  const carrier = proxy.select({ carrying: "marker-7f3a" })[0]!;
  expect(proxy.select({ index: carrier.index })).toEqual([carrier]);
  proxy.reset({ carrying: "marker-7f3a" });
  await expect(slow).rejects.toThrow(/closed/);
  expect(await ask(a, "SELECT 'a still works'")).toBe("a still works");
  expect(proxy.reset("all")).toBeGreaterThanOrEqual(1);
  await a.waitClosed();
});

test("a trigger resets the connection as COMMIT's reply passes: committed on the server, never acknowledged", async () => {
  await pg.psql("CREATE TABLE IF NOT EXISTS proxy_commit (id int)", { user: "app", db: "app" });
  const c = await login();
  await ask(c, "BEGIN; INSERT INTO proxy_commit VALUES (1)");
  proxy.when({ direction: "down", contains: "COMMIT\0", before: true }, (conn) => conn.reset());
  await expect(ask(c, "COMMIT")).rejects.toThrow(/closed/);
  expect(await pg.psql("SELECT count(*) FROM proxy_commit", { db: "app" })).toBe("1");
});

test("onConnect can stall every new connection before its first byte", async () => {
  const stalling = FaultProxy.start({ host: pg.host, port: pg.port }, { onConnect: (c) => c.stall("up") });
  try {
    const c = await RawClient.connect(stalling.port);
    const login = c.login("app", "app", "apppass");
    await Bun.sleep(200);
    expect(c.received).toHaveLength(0);
    stalling.resume("all");
    expect((await login).at(-1)!.tag).toBe("Z");
    c.close();
  } finally {
    stalling.stop();
  }
});
