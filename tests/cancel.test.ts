// CancelRequest: each client has its own key; a cancel reaches the server it is linked to, and never anyone else's query.

import { afterAll, beforeAll, expect, test } from "bun:test";
import postgres from "postgres";
import { startPostgres, type PgInstance } from "./harness/postgres.ts";
import { startPgbun, type PgbunProcess } from "./harness/pgbun.ts";
import { cancelRequest } from "../src/protocol/messages.ts";
import { msg, RawClient } from "./harness/raw-client.ts";

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

async function sendCancel(pid: number, secret: number): Promise<void> {
  const s = await Bun.connect({ hostname: "127.0.0.1", port: bouncer.port, socket: { data() {} } });
  s.write(cancelRequest(pid, secret));
  await Bun.sleep(50);
  s.end();
}

test("postgres.js's query.cancel() stops the running query with 57014 and the client goes on", async () => {
  const sql = postgres(bouncer.url("app", "apppass", "app"), { max: 1, prepare: false });
  const q = sql`SELECT pg_sleep(10)`;
  const started = Date.now();
  setTimeout(() => q.cancel(), 300);
  const err = await q.catch((e) => e);
  expect(err.code).toBe("57014");
  expect(Date.now() - started).toBeLessThan(5000);
  expect((await sql`SELECT 1 AS one`)[0]!.one).toBe(1);
  await sql.end();
});

test("every client gets a distinct positive 32-bit process id", async () => {
  const keys = new Set<number>();
  const clients = await Promise.all(Array.from({ length: 20 }, () => RawClient.connect(bouncer.port)));
  for (const c of clients) {
    const m = await c.login("app", "app", "apppass");
    const k = m.find((x) => x.tag === "K")!;
    const pid = new DataView(k.body.buffer, k.body.byteOffset).getInt32(0);
    expect(pid).toBeGreaterThan(0);
    keys.add(pid);
    c.close();
  }
  expect(keys.size).toBe(20);
});

test("a cancel with the wrong secret does nothing", async () => {
  const c = await RawClient.connect(bouncer.port);
  const m = await c.login("app", "app", "apppass");
  const k = m.find((x) => x.tag === "K")!;
  const dv = new DataView(k.body.buffer, k.body.byteOffset);
  c.send(msg.query("SELECT pg_sleep(0.5)"));
  await Bun.sleep(100);
  await sendCancel(dv.getInt32(0), dv.getInt32(4) ^ 1);
  expect(await c.untilReady(1, 3000)).toEqual(["T", "D", "C", "Z:I"]);
  c.close();
});

test("a late cancel, sent after the client's query finished, never hits the next client's query on that server", async () => {
  // one server: whoever runs next gets the same backend
  const p = await startPgbun(["--upstream", pg.url("app", "apppass", "app"), "--pool-mode", "transaction", "--pool-size", "1"]);
  const a = await RawClient.connect(p.port);
  const m = await a.login("app", "app", "apppass");
  const k = m.find((x) => x.tag === "K")!;
  const dv = new DataView(k.body.buffer, k.body.byteOffset);
  const b = await RawClient.connect(p.port);
  await b.login("app", "app", "apppass");
  for (let round = 0; round < 10; round++) {
    a.send(msg.query("SELECT 1"));
    await a.untilReady();
    // a is unlinked now; its cancel must be dropped, and b's query must run to completion
    b.send(msg.query("SELECT pg_sleep(0.05)"));
    const s = await Bun.connect({ hostname: "127.0.0.1", port: p.port, socket: { data() {} } });
    s.write(cancelRequest(dv.getInt32(0), dv.getInt32(4)));
    expect(await b.untilReady(1, 3000)).toEqual(["T", "D", "C", "Z:I"]);
    s.end();
  }
  a.close();
  b.close();
  await p.stop();
});

test("a cancel arriving while the client waits for a server is dropped, not sent elsewhere", async () => {
  const p = await startPgbun(["--upstream", pg.url("app", "apppass", "app"), "--pool-mode", "transaction", "--pool-size", "1"]);
  const holder = await RawClient.connect(p.port);
  await holder.login("app", "app", "apppass");
  holder.send(msg.query("SELECT pg_sleep(0.4)"));
  const waiter = await RawClient.connect(p.port);
  const m = await waiter.login("app", "app", "apppass");
  const k = m.find((x) => x.tag === "K")!;
  const dv = new DataView(k.body.buffer, k.body.byteOffset);
  waiter.send(msg.query("SELECT 1"));
  await Bun.sleep(100);
  const s = await Bun.connect({ hostname: "127.0.0.1", port: p.port, socket: { data() {} } });
  s.write(cancelRequest(dv.getInt32(0), dv.getInt32(4)));
  expect(await holder.untilReady(1, 3000)).toEqual(["T", "D", "C", "Z:I"]);
  expect(await waiter.untilReady(1, 3000)).toEqual(["T", "D", "C", "Z:I"]);
  s.end();
  holder.close();
  waiter.close();
  await p.stop();
});
