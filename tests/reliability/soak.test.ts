// A bounded soak through `bun run soak`: 100 clients of every kind for a few seconds while backends die; all answers right.

import { expect, test } from "bun:test";
import { REPO_ROOT } from "../harness/pgbun.ts";
import type { SoakSummary } from "./soak-run.ts";

test("a 6 s soak with 100 clients, the ledger and a backend killed every 0.2 s finds nothing, and bun run soak reports it", async () => {
  // A child process, as `bun run soak` runs: postgres.js's own fault on killed connections (see driver-guard.ts)
  // would fail a bun test from inside, and this also proves the script's flags and JSON.
  const args = ["--duration", "6", "--clients", "100", "--ramp", "1", "--rss-every", "0.5", "--ledger-writers", "10"];
  args.push("--proxy-fault-every-ms", "500", "--quiet");
  const proc = Bun.spawn([process.execPath, "bench/reliability/soak.ts", ...args], { cwd: REPO_ROOT, stdout: "pipe", stderr: "pipe" });
  const [out, err, code] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text(), proc.exited]);
  let s: SoakSummary & { ok: boolean; found: string[] };
  try {
    s = JSON.parse(out);
  } catch {
    throw new Error(`bun run soak printed no JSON (exit ${code}):\n${out}\n${err}`);
  }
  expect(s.found, out).toEqual([]);
  expect(s.ok).toBe(true);
  expect(code).toBe(0);
  expect(s.transactions).toBeGreaterThan(500);
  expect(s.slowReads + s.disconnects).toBeGreaterThan(0);
  expect(s.ledger!.kills).toBeGreaterThanOrEqual(10);
  expect(s.ledger!.acknowledged).toBeGreaterThan(100);
  expect(s.rss.samples.length).toBeGreaterThanOrEqual(8);
}, 60_000);
