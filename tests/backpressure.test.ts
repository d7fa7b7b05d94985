// A client reading a huge result slowly: pgbun pauses the server instead of buffering, so its memory stays bounded.

import { afterAll, beforeAll, expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { startPostgres, type PgInstance } from "./harness/postgres.ts";
import { startPgbun, type PgbunProcess } from "./harness/pgbun.ts";
import { msg, RawClient } from "./harness/raw-client.ts";

let pg: PgInstance;
let bouncer: PgbunProcess;

beforeAll(async () => {
  pg = await startPostgres();
  bouncer = await startPgbun(["--upstream", pg.url("app", "apppass", "app"), "--pool-mode", "transaction"]);
});

afterAll(async () => {
  await bouncer.stop();
  await pg.stop();
});

function rssMiB(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
  return Number(m![1]) / 1024;
}

test("a 300 MB result read by a client that stalls, then reads slowly, keeps pgbun's memory bounded and loses nothing", async () => {
  const rows = 300_000;
  const rowBytes = 1000;
  const c = await RawClient.connect(bouncer.port);
  await c.login("app", "app", "apppass");
  c.countDataRows = true;
  const before = rssMiB(bouncer.proc.pid);
  let peak = before;
  c.send(msg.query(`SELECT repeat('x', ${rowBytes}) FROM generate_series(1, ${rows})`));
  // Stall, then read in short bursts: what PostgreSQL sends meanwhile must wait in PostgreSQL, not pile up in pgbun.
  c.pauseReading(true);
  for (let i = 0; i < 20; i++) {
    await Bun.sleep(100);
    peak = Math.max(peak, rssMiB(bouncer.proc.pid));
    if (i >= 10) {
      c.pauseReading(false);
      await Bun.sleep(5);
      c.pauseReading(true);
    }
  }
  c.pauseReading(false);
  const tags = await c.untilReady(1, 60_000);
  peak = Math.max(peak, rssMiB(bouncer.proc.pid));
  expect(tags).toEqual(["T", "C", "Z:I"]);
  expect(c.dataRows).toBe(rows);
  expect(c.bytes).toBeGreaterThan(rows * rowBytes);
  console.log(`pgbun RSS before ${before.toFixed(1)} MiB, peak ${peak.toFixed(1)} MiB while relaying ${(c.bytes / 2 ** 20).toFixed(0)} MiB`);
  expect(peak - before).toBeLessThan(64);
  c.close();
});
