// pgbun's own counters as load-test.js reads them: GET /stats, which process answered, and deltas that survive a restart.

import postgres from "postgres";
import { pgbunUrl } from "./load-options.js";

const STATS_TIMEOUT_MS = 2000;

/**
 * pgbun's /stats: this run's pool (null when it does not exist yet) and which pgbun process answered,
 * or { why } when it could not be read.
 */
export async function readStats(o, timeoutMs = STATS_TIMEOUT_MS) {
  const base = o["stats-url"];
  if (base === null) return { why: "no --stats-url" };
  try {
    const r = await fetch(`${base}/stats`, { signal: AbortSignal.timeout(timeoutMs) });
    if (!r.ok) return { why: `GET ${base}/stats answered ${r.status}` };
    const body = await r.json();
    if (!Array.isArray(body?.pools)) return { why: `GET ${base}/stats has no pools list` };
    return {
      pool: body.pools.find((p) => p.database === o.database && p.user === o.user) ?? null,
      process: processOf(body, Date.now()),
    };
  } catch (err) {
    return { why: `GET ${base}/stats failed: ${err?.message ?? err}` };
  }
}

export async function resetPeak(o) {
  if (o["stats-url"] === null) return;
  await fetch(`${o["stats-url"]}/stats/reset-peak`, { method: "POST", signal: AbortSignal.timeout(STATS_TIMEOUT_MS) }).catch(() => {});
}

/** What identifies one pgbun process in /stats: run_id and started_at where pgbun reports them, else pid and uptime. */
export function processOf(body, now) {
  const uptime = typeof body.uptime_seconds === "number" ? body.uptime_seconds : null;
  return {
    runId: typeof body.run_id === "string" ? body.run_id : null,
    startedAt: typeof body.started_at === "string" ? body.started_at : null,
    pid: typeof body.pid === "number" ? body.pid : null,
    // Start time implied by the uptime, on this machine's clock: it stays put while the process lives.
    impliedStartMs: uptime === null ? null : now - uptime * 1000,
    uptimeSeconds: uptime,
  };
}

/** Whether b was answered by a different pgbun process than a (a restart, a hot reload, a crash and restart). */
export function restartedBetween(a, b) {
  if (a.runId !== null && b.runId !== null) return a.runId !== b.runId;
  if (a.startedAt !== null && b.startedAt !== null) return a.startedAt !== b.startedAt;
  if (a.pid !== null && b.pid !== null && a.pid !== b.pid) return true;
  // `bun --watch` restarts in the same pid: then only the uptime tells (1 s of slack for the two clocks' reads).
  if (a.impliedStartMs !== null && b.impliedStartMs !== null) return b.impliedStartMs - a.impliedStartMs > 1000;
  return false;
}

/**
 * Polls /stats while the load runs and counts pgbun restarts, so a restart between two polls is seen even when
 * pgbun is back before the run ends. Polls never overlap, and each is bounded.
 */
export class RestartWatch {
  restarts = 0;
  #last;
  /** The poll in flight, if any. */
  #polling = null;

  constructor(o, first) {
    this.o = o;
    this.#last = first.process ?? null;
  }

  /** One poll, unless one is still in flight; a pgbun that does not answer (it may be restarting) is skipped. */
  poll() {
    if (this.#polling !== null || this.o["stats-url"] === null) return;
    this.#polling = readStats(this.o, 1000).then((stats) => {
      this.see(stats);
      this.#polling = null;
    });
  }

  /** The last reading, after any poll in flight: an older answer arriving late must not look like a restart. */
  async finish(stats) {
    await this.#polling;
    this.see(stats);
  }

  see(stats) {
    if (stats.process === undefined) return;
    if (this.#last !== null && restartedBetween(this.#last, stats.process)) this.restarts++;
    this.#last = stats.process;
  }
}

const NULL_FIGURES = {
  client_transactions: null,
  server_connections_opened: null,
  max_server_connections_used: null,
  reuse_efficiency_percent: null,
  pool_size: null,
  pgbun_restarted: null,
  pooling_seconds: null,
};

/**
 * Deltas of pgbun's counters for this run's pool, or nulls and the reason. After a restart the old process's counters
 * are gone, so the figures are the new process's own, from its start: they cover only the last `pooling_seconds`.
 */
export function poolingFigures(o, before, after, restarts, elapsedSeconds) {
  if (before.why !== undefined) return { figures: NULL_FIGURES, why: before.why };
  const why = after.why ?? (after.pool === null ? `pgbun reports no pool for database ${o.database}, user ${o.user}` : null);
  const restarted = restarts > 0;
  if (why !== null) return { figures: { ...NULL_FIGURES, pgbun_restarted: after.why === undefined ? restarted : null }, why };
  // A pool that did not exist before the run was created by it: its counters started at zero. So did a restarted pgbun's.
  const base = restarted ? null : before.pool;
  const delta = (key) => after.pool[key] - (base?.[key] ?? 0);
  const assignments = delta("total_server_assignment_count");
  const since = restarted ? Math.min(elapsedSeconds, after.process.uptimeSeconds ?? elapsedSeconds) : elapsedSeconds;
  return {
    figures: {
      client_transactions: delta("total_xact_count"),
      server_connections_opened: delta("server_connections_opened"),
      max_server_connections_used: after.pool.server_connections_peak,
      reuse_efficiency_percent: assignments > 0 ? Math.round(10000 * (1 - delta("total_server_assignment_fresh") / assignments)) / 100 : null,
      pool_size: after.pool.pool_size,
      pgbun_restarted: restarted,
      pooling_seconds: Math.round(since * 1000) / 1000,
    },
    why: null,
  };
}

/**
 * The pool size pgbun is configured with for o.database, for a pool that does not exist yet: /stats lists only
 * pools that do, so this asks the admin console (SHOW DATABASES). Null when the user may not use the console.
 */
export async function configuredPoolSize(o) {
  const admin = postgres(pgbunUrl(o, "pgbun"), { max: 1, prepare: false, fetch_types: false, connect_timeout: 3, onnotice: () => {} });
  let timer;
  try {
    const limit = new Promise((resolve) => (timer = setTimeout(() => resolve(null), 3000)));
    const rows = await Promise.race([admin`SHOW DATABASES`.simple(), limit]);
    const row = rows?.find((r) => r.name === o.database);
    return row ? Number(row.pool_size) : null;
  } catch {
    return null;
  } finally {
    clearTimeout(timer);
    await admin.end({ timeout: 1 });
  }
}
