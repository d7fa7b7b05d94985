// A server's lifecycle under clients that misbehave: never stranded, never handed out dead, backpressure that follows
// the client, and a dying backend's FATAL shown once.

import { afterAll, beforeAll, expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import postgres from "postgres";
import { startPostgres, type PgInstance } from "./harness/postgres.ts";
import { startPgbun, type PgbunProcess } from "./harness/pgbun.ts";
import { errorCode, msg, RawClient } from "./harness/raw-client.ts";
import { FaultProxy } from "./harness/fault-proxy.ts";

let pg: PgInstance;
const started: PgbunProcess[] = [];

beforeAll(async () => {
  pg = await startPostgres();
});

afterAll(async () => {
  await Promise.all(started.map((b) => b.stop()));
  await pg.stop();
});

async function pgbun(mode: string, size: number, extra: string[] = []): Promise<PgbunProcess> {
  const b = await startPgbun(["--upstream", pg.url("app", "apppass", "app"), "--pool-mode", mode, "--pool-size", String(size), ...extra]);
  started.push(b);
  return b;
}

async function client(b: PgbunProcess): Promise<RawClient> {
  const c = await RawClient.connect(b.port);
  await c.login("app", "app", "apppass");
  return c;
}

function rssMiB(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
  return Number(m![1]) / 1024;
}

/** Result sizes (rows of ~1 KB) to sweep: stranding needed the whole result and its ReadyForQuery to reach pgbun in the
 *  read that filled the client's queue, which happens for one size window that depends on the kernel's socket buffers. */
const SIZES = Array.from({ length: 80 }, (_, i) => 3000 + i * 60);

for (const [mode, begin] of [
  ["session", ""],
  ["transaction", "BEGIN; "],
] as const) {
  test(`${mode} mode: a client that stops reading a large result${begin ? " inside BEGIN" : ""} and leaves never strands its server`, async () => {
    const b = await pgbun(mode, 1);
    for (const rows of SIZES) {
      const c = await client(b);
      c.pauseReading(true);
      c.send(msg.query(`${begin}SELECT repeat('x', 1000) FROM generate_series(1, ${rows})`));
      await Bun.sleep(60);
      c.close();
      // With one server, the next client is served only if that server came back clean.
      const next = await client(b);
      next.send(msg.query("SELECT txid_current_if_assigned() IS NULL AS clean"));
      const tags = await next.untilReady(1, 3000).catch(() => [`stranded after ${rows} rows`]);
      expect(tags).toEqual(["T", "D", "C", "Z:I"]);
      next.close();
    }
  });
}

test("transaction mode: backpressure follows the client to its next server, so unread results stay in PostgreSQL", async () => {
  const b = await pgbun("transaction", 4);
  const base = rssMiB(b.proc.pid);
  let worst = 0;
  for (const rows of SIZES.filter((_, i) => i % 2 === 0)) {
    const a = await client(b);
    a.pauseReading(true);
    a.send(msg.query(`SELECT repeat('x', 1000) FROM generate_series(1, ${rows})`));
    await Bun.sleep(60);
    // Another client takes the server that just went back to the pool; the unread client's next result (50 MB)
    // runs on a server of its own and must wait in PostgreSQL, not in pgbun.
    const other = await client(b);
    other.send(msg.query("BEGIN"));
    const before = rssMiB(b.proc.pid);
    a.send(msg.query("SELECT repeat('y', 1000) FROM generate_series(1, 50000)"));
    await Bun.sleep(150);
    worst = Math.max(worst, rssMiB(b.proc.pid) - before);
    a.close();
    other.close();
  }
  console.log(`pgbun RSS at start ${base.toFixed(1)} MiB; worst growth while a 50 MB result went unread: ${worst.toFixed(1)} MiB`);
  expect(worst).toBeLessThan(25);
});

test("a backend killed under a client: the client sees PostgreSQL's FATAL once, then the connection closes", async () => {
  const b = await pgbun("transaction", 2);
  const c = await client(b);
  c.send(msg.query("BEGIN; SELECT pg_backend_pid()"));
  let pid = 0;
  for (;;) {
    const m = await c.next();
    if (m.tag === "D") pid = Number(new TextDecoder().decode(m.body.slice(6)));
    if (m.tag === "Z") break;
  }
  await pg.psql(`SELECT pg_terminate_backend(${pid})`);
  await c.waitClosed();
  const errors = c.received.filter((m) => m.tag === "E");
  expect(errors.map(errorCode)).toEqual(["57P01"]);
});

test("a server that sent FATAL while idle is never handed to the next client, even before its socket closes", async () => {
  // The proxy passes PostgreSQL's FATAL on and then holds back the connection's end, as a slow network would.
  const proxy = FaultProxy.start({ host: "127.0.0.1", port: pg.port });
  proxy.when({ direction: "down", contains: "57P01", times: 100 }, (c) => c.stall("down"));
  const b = await startPgbun(["--upstream", `postgres://app:apppass@127.0.0.1:${proxy.port}/app`, "--pool-mode", "transaction", "--pool-size", "1"]);
  started.push(b);
  const sql = postgres(b.url("app", "apppass", "app"), { max: 1, prepare: false });
  try {
    for (let i = 0; i < 3; i++) {
      const pid = (await sql`SELECT pg_backend_pid() AS pid`)[0]!.pid as number;
      await pg.psql(`SELECT pg_terminate_backend(${pid}, 5000)`);
      await Bun.sleep(100);
      const answer = await Promise.race([sql`SELECT ${i}::int AS i`.then((r) => r[0]!.i), Bun.sleep(3000).then(() => "no answer in 3 s")]);
      expect(answer).toBe(i);
    }
  } finally {
    proxy.resume("all");
    await sql.end({ timeout: 1 });
    proxy.stop();
  }
});

test("a server whose cleanup never answers is closed after server_connect_timeout, and the pool serves again", async () => {
  const proxy = FaultProxy.start({ host: "127.0.0.1", port: pg.port });
  const b = await startPgbun([
    "--upstream", `postgres://app:apppass@127.0.0.1:${proxy.port}/app`,
    "--pool-mode", "session", "--pool-size", "1", "--server-connect-timeout", "1",
  ]);
  started.push(b);
  try {
    const c = await client(b);
    c.send(msg.query("BEGIN"));
    await c.untilReady();
    // The network swallows everything PostgreSQL says from now on: the ROLLBACK and reset pgbun sends never get answers.
    proxy.stall("all", "down");
    c.close();
    // Only that connection is stalled; a new server's connection passes.
    const next = await client(b);
    next.send(msg.query("SELECT 1"));
    expect(await next.untilReady(1, 5000)).toEqual(["T", "D", "C", "Z:I"]);
    next.close();
  } finally {
    proxy.stop();
  }
});

test("named Parses waiting for a server count against the client's bound: pgbun stops reading instead of holding them all", async () => {
  const b = await pgbun("transaction", 1);
  const holder = await client(b);
  holder.send(msg.query("BEGIN"));
  await holder.untilReady();
  const c = await client(b);
  const socket = (c as unknown as { socket: { write(b: Uint8Array): number } }).socket;
  const before = rssMiB(b.proc.pid);
  // About 150 MB of Parse messages while the pool's only server is busy: what waits must stay near the bound.
  const text = "SELECT '" + "x".repeat(60_000) + "'";
  const deadline = Date.now() + 4000;
  let sent = 0;
  for (let i = 0; i < 2500 && Date.now() < deadline; i++) {
    let m = msg.parse(`s${i}`, text);
    while (m.length > 0 && Date.now() < deadline) {
      const n = socket.write(m);
      if (n > 0) {
        sent += n;
        m = m.subarray(n);
      } else await Bun.sleep(5);
    }
  }
  await Bun.sleep(300);
  const growth = rssMiB(b.proc.pid) - before;
  console.log(`sent ${(sent / 2 ** 20).toFixed(0)} MiB of Parse while waiting; pgbun RSS grew ${growth.toFixed(1)} MiB`);
  expect(growth).toBeLessThan(40);
  holder.close();
  c.close();
});
