// The soak: many clients of every kind through pgbun for a long time, the ledger beside them, pgbun's RSS sampled throughout.

import { LEDGER_SETUP_SQL, runLedger, type LedgerSummary } from "./ledger.ts";
import { Probe, type ProbeResult } from "./probe.ts";
import { Rng } from "./random.ts";
import { flatness, RssRecorder, type Flatness, type RssSummary } from "./rss.ts";
import { driverClient, rawClient, slowReader, SOAK_SETUP_SQL, Tally, vanishingClient, type ClientPlan } from "./soak-clients.ts";
import { Target } from "./target.ts";

export interface SoakOptions {
  durationMs: number;
  clients: number;
  seed?: number;
  poolSize?: number;
  /** Clients start spread over this long; default a tenth of the run, at most 10 s. */
  rampMs?: number;
  /** Each client's pause between operations, [min, max] ms; default [50, 450]. */
  thinkMs?: [number, number];
  /** An operation with no outcome for this long counts as hung; default 30 s. */
  opTimeoutMs?: number;
  maxOpsPerClient?: number;
  rssEveryMs?: number;
  /** RSS is flat when the last quarter's median is within this ratio of the second quarter's; default 1.2. */
  flatRatio?: number;
  /** Ledger writers beside the clients (0: no ledger); default 20. */
  ledgerWriters?: number;
  /** In the ledger's writers, one in this many is postgres.js (0: none). */
  ledgerDriverEvery?: number;
  killEveryMs?: number;
  /** A fault proxy between pgbun and PostgreSQL resets a server connection this often (0: no proxy). */
  proxyFaultEveryMs?: number;
  pgbunArgs?: string[];
  pgbunRoot?: string;
  progress?: (line: string) => void;
}

export interface SoakSummary {
  durationMs: number;
  clients: number;
  transactions: number;
  transactionsPerSecond: number;
  wrongAnswers: number;
  hungOperations: number;
  disconnects: number;
  slowReads: number;
  errors: { total: number; unexpected: number; byCode: Record<string, number>; examples: string[] };
  ledger: (Omit<LedgerSummary, "lost" | "phantom" | "failedButPresent"> & { lost: number; phantom: number; failedButPresent: number; examples: number[] }) | null;
  rss: RssSummary & { flatness: Flatness };
  /**
   * How late this process's timers ran (p99 and max): when the clients' own process is saturated, their timeouts
   * (postgres.js's connect_timeout above all) fire late or falsely, and latencies are the harness's, not pgbun's.
   */
  eventLoopLagMs: { p99: number; max: number };
  /** After the clients left: pgbun alive, a well-behaved client answered, and no server was left busy. */
  end: { pgbunAlive: boolean; exit: string | null; probe: ProbeResult; probeAgain: ProbeResult | null; strandedServers: string | null; pgbunOutput?: string };
}

export async function runSoak(o: SoakOptions): Promise<SoakSummary> {
  const target = await Target.start({
    poolSize: o.poolSize ?? 20,
    maxClientConn: o.clients + (o.ledgerWriters ?? 20) + 100,
    proxy: (o.proxyFaultEveryMs ?? 0) > 0,
    setupSql: SOAK_SETUP_SQL + LEDGER_SETUP_SQL,
    pgbunArgs: o.pgbunArgs,
    pgbunRoot: o.pgbunRoot,
  });
  try {
    return await soak(target, o);
  } finally {
    await target.stop();
  }
}

async function soak(target: Target, o: SoakOptions): Promise<SoakSummary> {
  const started = Date.now();
  const rng = new Rng(o.seed ?? 1);
  const tally = new Tally();
  const plan: ClientPlan = {
    target,
    tally,
    stopAt: started + o.durationMs,
    maxOps: o.maxOpsPerClient ?? 1_000_000,
    thinkMs: o.thinkMs ?? [50, 450],
    opTimeoutMs: o.opTimeoutMs ?? 30_000,
  };
  const rss = new RssRecorder();
  const everyMs = o.rssEveryMs ?? 5000;
  const sampler = setInterval(() => {
    rss.sample(target.pid, tally.transactions);
    const at = Math.round((Date.now() - started) / 1000);
    o.progress?.(`${at} s: ${tally.transactions} transactions, ${tally.unexpectedErrors} unexpected errors, RSS ${rss.samples.at(-1)?.kb} kB`);
  }, everyMs);
  rss.sample(target.pid, 0);
  const lag = watchEventLoop();

  const rampMs = o.rampMs ?? Math.min(10_000, o.durationMs / 10);
  const clients = Array.from({ length: o.clients }, async (_, i) => {
    const own = rng.fork();
    await Bun.sleep((i * rampMs) / o.clients);
    // Per hundred clients: 2 slow readers, 5 that vanish mid-transaction, 20 raw-protocol, 73 postgres.js.
    const kind = i % 100;
    if (kind < 2) return slowReader(plan, own);
    if (kind < 7) return vanishingClient(plan, own);
    if (kind < 27) return rawClient(plan, own, i);
    return driverClient(plan, own, i % 2 === 0);
  });
  const ledger =
    (o.ledgerWriters ?? 20) > 0
      ? runLedger(target, {
          writers: o.ledgerWriters ?? 20,
          durationMs: o.durationMs,
          seed: o.seed,
          killEveryMs: o.killEveryMs ?? 200,
          proxyFaultEveryMs: o.proxyFaultEveryMs ?? 0,
          driverEvery: o.ledgerDriverEvery ?? 0,
          opTimeoutMs: plan.opTimeoutMs,
        })
      : null;
  await Promise.all(clients);
  const book = ledger ? await ledger : null;
  clearInterval(sampler);
  const eventLoopLagMs = lag.stop();
  rss.sample(target.pid, tally.transactions);
  const elapsed = Date.now() - started;

  // The last kill or reset may still be reaching pgbun; a server dying as it is handed out is no fault of pgbun's.
  await Bun.sleep(500);
  const probe = new Probe(target, 10_000);
  const first: ProbeResult = target.alive() ? await probe.check() : { ok: false, kind: "hung", detail: "pgbun is not running" };
  // A second look tells a server handed out dead once (then dropped) from a pool that stays broken.
  const again = first.ok || !target.alive() ? null : (await Bun.sleep(1000), await probe.check());
  const end = {
    pgbunAlive: target.alive(),
    exit: target.exitReason(),
    probe: first,
    probeAgain: again,
    strandedServers: target.alive() ? await target.strandedServers() : null,
    pgbunOutput: first.ok ? undefined : target.outputTail(20),
  };
  await probe.close();
  const samples = rss.summary();
  return {
    durationMs: elapsed,
    clients: o.clients,
    transactions: tally.transactions,
    transactionsPerSecond: Math.round(tally.transactions / (elapsed / 1000)),
    wrongAnswers: tally.wrongAnswers,
    hungOperations: tally.hung,
    disconnects: tally.disconnects,
    slowReads: tally.slowReads,
    errors: {
      total: Object.values(tally.errors).reduce((a, b) => a + b, 0),
      unexpected: tally.unexpectedErrors,
      byCode: tally.errors,
      examples: tally.examples,
    },
    ledger: book && {
      ...book,
      lost: book.lost.length,
      phantom: book.phantom.length,
      failedButPresent: book.failedButPresent.length,
      examples: [...book.lost, ...book.phantom, ...book.failedButPresent].slice(0, 20),
    },
    rss: { ...samples, flatness: flatness(rss.samples, o.flatRatio) },
    eventLoopLagMs,
    end,
  };
}

/** Measures how late a 100 ms timer fires, until stopped. */
function watchEventLoop(): { stop(): { p99: number; max: number } } {
  const lags: number[] = [];
  let last = performance.now();
  const timer = setInterval(() => {
    const now = performance.now();
    lags.push(Math.max(0, now - last - 100));
    last = now;
  }, 100);
  return {
    stop() {
      clearInterval(timer);
      const sorted = lags.sort((a, b) => a - b);
      return { p99: Math.round(sorted[Math.floor(sorted.length * 0.99)] ?? 0), max: Math.round(sorted.at(-1) ?? 0) };
    },
  };
}
