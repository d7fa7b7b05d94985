// The interleaved matrix: round by round, each point runs through every target in turn, so drift falls on all of them.

import { runPgbench, threadsFor, type PgbenchPoint, type PgbenchResult } from "./pgbench.ts";
import { graceFor, pointName, samePoint } from "./plan.ts";
import { cpuTimeMs } from "./system.ts";
import { newPoint, notRun, summarise, type PointResult, type TargetResult } from "./report.ts";

export interface MatrixTarget {
  /** "pgbun", "PgBouncer", "direct", or an extra target such as "pgbun-wN" (report.ts's EXTRA_TARGETS). */
  key: string;
  /** Only these points run through this target (extra targets measured at a few points); absent: every point. */
  only?: PgbenchPoint[];
  port: number;
  /** Why this target does not run a point (unsupported, skipped), or null when it does. */
  exclude(p: PgbenchPoint): { status: "unsupported" | "skipped"; reason: string } | null;
  /** False once the process behind the target has died: its remaining runs are recorded as errors. */
  alive(): boolean;
  logTail(): string;
  /** The pooler's process, whose CPU time each run records; absent for direct and for multi-process pgbun. */
  pid?: number;
  /** pgbench's sslmode through this target (the TLS points); absent: plain text. */
  sslmode?: string;
}

export interface MatrixOptions {
  rounds: number;
  /** pgbench -T for a point. */
  seconds(p: PgbenchPoint): number;
  user: string;
  password: string;
  db: string;
  /** Run before every TPC-B measurement (vacuum, truncate history), directly on PostgreSQL. */
  beforeTpcb(): Promise<void>;
  /** How long pgbench may outlive -T before it is killed as stalled; default plan.ts's graceFor. */
  grace?(p: PgbenchPoint): number;
}

const fmt = (r: PgbenchResult) =>
  r.ok ? `${r.tps!.toFixed(0).padStart(7)} tps ${r.latencyMs!.toFixed(3).padStart(8)} ms, ${r.failed ?? "?"} failed` : `ERROR ${r.error}`;

const appliesTo = (t: MatrixTarget, p: PgbenchPoint) => !t.only || t.only.some((q) => samePoint(q, p));

/** How many pgbench runs the matrix will make and their -T in all (connection setup and teardown come on top). */
export function plannedRuns(points: PgbenchPoint[], targets: MatrixTarget[], o: MatrixOptions): { runs: number; seconds: number } {
  let runs = 0;
  let seconds = 0;
  for (const p of points) {
    const n = targets.filter((t) => appliesTo(t, p) && !t.exclude(p)).length;
    runs += n * o.rounds;
    seconds += n * o.rounds * o.seconds(p);
  }
  return { runs, seconds };
}

export async function runMatrix(points: PgbenchPoint[], targets: MatrixTarget[], o: MatrixOptions): Promise<PointResult[]> {
  const runs = new Map<string, PgbenchResult[]>();
  const excluded = new Map<string, TargetResult>();
  const key = (i: number, t: string) => `${i}\0${t}`;
  const reportedDead = new Set<string>();

  for (let round = 1; round <= o.rounds; round++) {
    // Each round starts with a different target, so no target always runs first (after the previous point's load).
    const order = targets.map((_, j) => targets[(j + round - 1) % targets.length]!);
    for (const [i, p] of points.entries()) {
      for (const t of order) {
        if (!appliesTo(t, p)) continue;
        const why = t.exclude(p);
        if (why) {
          excluded.set(key(i, t.key), notRun(why.status, why.reason));
          continue;
        }
        let r: PgbenchResult;
        if (!t.alive()) {
          r = { ok: false, tps: null, latencyMs: null, failed: null, abortedClients: 0, transactions: null, connectMs: null, error: `${t.key} is no longer running` };
          if (!reportedDead.has(t.key)) {
            reportedDead.add(t.key);
            console.log(`${t.key} died; its last log lines:\n${t.logTail()}`);
          }
        } else {
          if (p.script === "tpcb") await o.beforeTpcb();
          const cpuBefore = t.pid ? cpuTimeMs(t.pid) : null;
          r = await runPgbench(p, o.seconds(p), { port: t.port, user: o.user, password: o.password, db: o.db, sslmode: t.sslmode }, (o.grace ?? graceFor)(p));
          const cpuAfter = t.pid ? cpuTimeMs(t.pid) : null;
          if (cpuBefore !== null && cpuAfter !== null) r.poolerCpuMs = cpuAfter - cpuBefore;
        }
        const list = runs.get(key(i, t.key)) ?? [];
        list.push(r);
        runs.set(key(i, t.key), list);
        console.log(`[${round}/${o.rounds}] ${pointName(p).padEnd(22)} ${t.key.padEnd(21)} ${fmt(r)}`);
      }
    }
  }

  return points.map((p, i) => {
    const point = newPoint(p, threadsFor(p.clients), o.seconds(p));
    for (const t of targets) {
      if (!appliesTo(t, p)) continue;
      point.targets[t.key] = excluded.get(key(i, t.key)) ?? summarise(runs.get(key(i, t.key)) ?? []);
    }
    return point;
  });
}

/** A short unmeasured run through every target first, so no target's first round pays for cold caches or a cold JIT. */
export async function warmUp(targets: MatrixTarget[], o: MatrixOptions, seconds: number, modes: PgbenchPoint["mode"][]): Promise<void> {
  for (const t of targets) {
    for (const mode of modes) {
      const p: PgbenchPoint = { script: "select-only", mode, clients: 10 };
      if (t.exclude(p) || !t.alive()) continue;
      const r = await runPgbench(p, seconds, { port: t.port, user: o.user, password: o.password, db: o.db, sslmode: t.sslmode }, (o.grace ?? graceFor)(p));
      if (!r.ok) console.log(`warm-up through ${t.key} (-M ${mode}) failed: ${r.error}`);
    }
  }
}
