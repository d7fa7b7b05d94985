// Nothing a client sends can crash pgbun or disturb other clients: bad bytes get an error where the protocol allows, then a close.

import { afterAll, beforeAll, expect, test } from "bun:test";
import postgres from "postgres";
import { startPostgres, type PgInstance } from "./harness/postgres.ts";
import { startPgbun, type PgbunProcess } from "./harness/pgbun.ts";
import { errorCode, errorMessage, msg, RawClient } from "./harness/raw-client.ts";
import { Writer } from "../src/protocol/writer.ts";

let pg: PgInstance;
let bouncer: PgbunProcess;
let bystander: postgres.Sql;

beforeAll(async () => {
  pg = await startPostgres();
  bouncer = await startPgbun(["--upstream", pg.url("app", "apppass", "app"), "--pool-mode", "transaction", "--max-packet-size", "65536"]);
  bystander = postgres(bouncer.url("app", "apppass", "app"), { max: 1, prepare: false });
  await bystander`SELECT 1`;
});

afterAll(async () => {
  await bystander.end();
  await bouncer.stop();
  await pg.stop();
});

async function stillServing(): Promise<void> {
  expect(bouncer.proc.exitCode).toBeNull();
  expect((await bystander`SELECT 1 AS one`)[0]!.one).toBe(1);
}

async function raw(bytes: Uint8Array, login = false): Promise<RawClient> {
  const c = await RawClient.connect(bouncer.port);
  if (login) await c.login("app", "app", "apppass");
  c.send(bytes);
  return c;
}

test("HTTP sent to the PostgreSQL port: the connection closed without a word, as PostgreSQL does, others unaffected", async () => {
  const c = await raw(new TextEncoder().encode("GET / HTTP/1.1\r\nHost: x\r\n\r\n"));
  await c.waitClosed();
  expect(c.received).toEqual([]);
  await stillServing();
});

test("a Terminate before the startup packet closes the connection silently (node-postgres' quick disconnect)", async () => {
  const c = await raw(Uint8Array.of(0x58, 0, 0, 0, 4));
  await c.waitClosed();
  expect(c.received).toEqual([]);
  await stillServing();
});

test("an unknown protocol version is refused with 0A000", async () => {
  const c = await raw(new Writer().startUntagged().int32(2 << 16).cstr("user").cstr("app").byte(0).end().take());
  const m = await c.next();
  expect(errorCode(m)).toBe("0A000");
  expect(errorMessage(m)).toContain("unsupported frontend protocol");
  await c.waitClosed();
  await stillServing();
});

test("a message length below 4 after login closes that client only", async () => {
  const c = await raw(Uint8Array.of(0x51, 0, 0, 0, 2), true);
  const m = await c.next();
  expect(errorCode(m)).toBe("08P01");
  await c.waitClosed();
  await stillServing();
});

test("a message longer than max_packet_size is refused before it is buffered", async () => {
  const c = await raw(Uint8Array.of(0x51, 0x10, 0, 0, 0), true);
  const m = await c.next();
  expect(errorMessage(m)).toContain("max_packet_size");
  await c.waitClosed();
  await stillServing();
});

test("an unknown message type is refused", async () => {
  const c = await raw(new Writer().start(0x7a).cstr("zzz").end().take(), true);
  const m = await c.next();
  expect(errorCode(m)).toBe("08P01");
  expect(errorMessage(m)).toContain("invalid frontend message type");
  await c.waitClosed();
  await stillServing();
});

test("a startup packet without a user is refused", async () => {
  const c = await raw(new Writer().startUntagged().int32(3 << 16).cstr("database").cstr("app").byte(0).end().take());
  const m = await c.next();
  expect(errorCode(m)).toBe("28000");
  await c.waitClosed();
});

test("500 connections of random bytes, before and after login, crash nothing", async () => {
  let seed = 12345;
  const rand = () => ((seed = (seed * 1103515245 + 12345) & 0x7fffffff) % 256);
  for (let i = 0; i < 500; i++) {
    const len = 1 + (rand() % 64);
    const bytes = Uint8Array.from({ length: len }, rand);
    const c = await raw(bytes, i % 2 === 1);
    await Bun.sleep(1);
    c.close();
  }
  await Bun.sleep(200);
  await stillServing();
  const c = await RawClient.connect(bouncer.port);
  await c.login("app", "app", "apppass");
  c.send(msg.query("SELECT 1"));
  expect(await c.untilReady()).toEqual(["T", "D", "C", "Z:I"]);
  c.close();
});
