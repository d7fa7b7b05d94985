// Large and merely announced messages: a length in a header is a claim, and pgbun's memory follows the bytes, not the claim.

import { afterAll, afterEach, beforeAll, expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { startPostgres, type PgInstance } from "./harness/postgres.ts";
import { startPgbun, type PgbunProcess } from "./harness/pgbun.ts";
import { msg, RawClient } from "./harness/raw-client.ts";

let pg: PgInstance;
const started: PgbunProcess[] = [];
const clients: RawClient[] = [];

beforeAll(async () => {
  pg = await startPostgres();
});
afterEach(async () => {
  for (const c of clients.splice(0)) c.close();
  for (const p of started.splice(0)) await p.stop();
});
afterAll(async () => {
  await pg.stop();
});

async function pgbun(...flags: string[]): Promise<PgbunProcess> {
  const p = await startPgbun(["--upstream", pg.url("app", "apppass", "app"), "--pool-mode", "transaction", ...flags]);
  started.push(p);
  return p;
}

async function login(p: PgbunProcess): Promise<RawClient> {
  const c = await RawClient.connect(p.port);
  clients.push(c);
  const m = await c.login("app", "app", "apppass");
  expect(m.at(-1)!.tag).toBe("Z");
  return c;
}

/** A process's resident memory (VmRSS) or address space (VmSize), in bytes. */
function memory(pid: number, field: "VmRSS" | "VmSize"): number {
  const kb = new RegExp(`^${field}:\\s+(\\d+) kB`, "m").exec(readFileSync(`/proc/${pid}/status`, "utf8"))?.[1];
  return Number(kb) * 1024;
}

test("16 clients announcing a 1 GB query each, sending 4 KB of it, cost pgbun a few MB, and others are served meanwhile", async () => {
  const p = await pgbun("--max-packet-size", String(2 ** 31 - 1));
  const other = await login(p);
  other.send(msg.query("SELECT 1"));
  await other.untilReady();
  const announcers = await Promise.all(Array.from({ length: 16 }, () => login(p)));
  const pid = p.proc.pid;
  const rssBefore = memory(pid, "VmRSS");
  const sizeBefore = memory(pid, "VmSize");
  for (const c of announcers) {
    const head = new Uint8Array(4096).fill(0x20);
    head[0] = 0x51; // Query
    new DataView(head.buffer).setInt32(1, 1 << 30);
    c.send(head);
  }
  await Bun.sleep(500);
  const started = performance.now();
  other.send(msg.query("SELECT 2"));
  expect(await other.untilReady(1, 2000)).toEqual(["T", "D", "C", "Z:I"]);
  expect(performance.now() - started).toBeLessThan(1000);
  expect(memory(pid, "VmRSS") - rssBefore).toBeLessThan(64 << 20);
  // Linux maps untouched pages lazily, so a gigabyte allocated up front may not show in RSS at once; it does in the
  // address space, which overcommit limits and cgroups charge, and in the collector's accounting.
  expect(memory(pid, "VmSize") - sizeBefore).toBeLessThan(1 << 30);
});
