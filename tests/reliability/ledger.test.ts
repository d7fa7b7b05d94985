// No lost and no phantom writes: every COMMIT pgbun acknowledged is in the table while backends are killed and reset.

import { afterAll, beforeAll, expect, test } from "bun:test";
import { LEDGER_SETUP_SQL, runLedger } from "./ledger.ts";
import { Target } from "./target.ts";

let target: Target;

beforeAll(async () => {
  // The proxy sits between pgbun and PostgreSQL, so connections can also be reset as COMMIT or its reply passes.
  target = await Target.start({ poolSize: 6, proxy: true, setupSql: LEDGER_SETUP_SQL });
});

afterAll(async () => {
  await target?.stop();
});

test("20 writers for 3 s, a backend killed every 0.2 s and a server connection reset every 0.3 s: nothing lost, nothing invented", async () => {
  const s = await runLedger(target, { writers: 20, durationMs: 3000, killEveryMs: 200, proxyFaultEveryMs: 300, opTimeoutMs: 8000 });
  const report = JSON.stringify({ ...s, lost: s.lost.slice(0, 10), failedButPresent: s.failedButPresent.slice(0, 10) });
  expect(s.lost, report).toEqual([]);
  expect(s.phantom, report).toEqual([]);
  expect(s.failedButPresent, report).toEqual([]);
  expect(s.hung, report).toBe(0);
  // The chaos really happened, and most writes still went through.
  expect(s.kills).toBeGreaterThanOrEqual(10);
  expect(s.proxyFaults).toBeGreaterThanOrEqual(5);
  expect(s.acknowledged).toBeGreaterThan(s.attempted / 2);
  expect(s.acknowledged + s.failed + s.unknown.total).toBe(s.attempted);
}, 30_000);
