// A bounded protocol fuzz run: thousands of malformed and mutated inputs, before and after login, break nothing.

import { afterAll, beforeAll, expect, test } from "bun:test";
import { FUZZ_SETUP_SQL, runFuzz } from "./fuzz-run.ts";
import { rssKb } from "./rss.ts";
import { Target } from "./target.ts";
import { WireClient } from "./wire-client.ts";

let target: Target;

beforeAll(async () => {
  target = await Target.start({ poolSize: 4, setupSql: FUZZ_SETUP_SQL });
});

afterAll(async () => {
  await target?.stop();
});

test("2,000 fuzz inputs: no crash, every health check answers correctly, no server left busy, memory stays small", async () => {
  // At the default max_packet_size (1 GB), so inputs declaring 1 GB reach the framer; past 1 GB of RSS pgbun is killed.
  const s = await runFuzz(target, { inputs: 2000, seed: 20261128, concurrency: 32, batchSize: 500, sentinelWaitMs: 150, rssCeilingKb: 1 << 20, isolate: true });
  expect(s.findings).toEqual([]);
  expect(s.inputsSent).toBe(2000);
  expect(s.crashes + s.hungChecks + s.wrongAnswers + s.strandedChecks + s.framingErrors).toBe(0);
  // Every family of input was sent, and sessions both survived inputs and were closed by them.
  expect(Object.keys(s.kinds).length).toBeGreaterThanOrEqual(14);
  expect(s.outcomes.answered).toBeGreaterThan(100);
  expect(s.outcomes.closedByPgbun).toBeGreaterThan(100);
  expect(s.rss.peakKb).toBeLessThan(512 * 1024);
}, 60_000);

// Found by this fuzzer before fa5c1a3: pgbun allocated a message's whole declared length when its header arrived.
// Allocations after the first few reused freed memory that had to be zeroed, so even one client at a time, declaring
// 1 GB and sending 1 KB, added about 1 GB of RSS and most of a second of CPU.
test("clients declaring 1 GB messages one after another leave pgbun's RSS under 256 MB", async () => {
  const plain = await Target.start({ poolSize: 2 });
  try {
    for (let i = 0; i < 8; i++) {
      const c = await WireClient.connect(plain.port);
      expect(await c.login("app", "app", "apppass")).toBe(true);
      c.send(Uint8Array.of(0x51, 0x3f, 0xff, 0xff, 0xff)); // 'Q' Query declaring 1 GB - 1
      c.send(new Uint8Array(1024));
      await Bun.sleep(50);
      c.reset();
    }
    await Bun.sleep(200);
    expect(rssKb(plain.pid)!).toBeLessThan(256 * 1024);
  } finally {
    await plain.stop();
  }
}, 60_000);
