// Drives load through pgbun in one pool mode and prints one JSON object of measured figures.
// Latency and throughput are timed here; pooling figures are deltas of pgbun's own counters (GET /stats), never estimated.

import postgres from "postgres";
import { writeFileSync } from "node:fs";
import { optionsOrExit, pgbunUrl } from "./load-options.js";
import { runBoundaryChecks } from "./transaction-test.js";

/** Rows in init.sql's accounts table. */
const ACCOUNTS = 10_000;
const MAX_UNITS_PER_CLIENT = 10_000_000;
/** Past the deadline, clients still stuck in a query get this long before their connections are ended. */
const GRACE_MS = 30_000;
/** Latencies kept for percentiles; beyond this a uniform sample (avg and max stay exact). */
const MAX_SAMPLES = 2_000_000;

const o = optionsOrExit("load-test.js", "drives load through pgbun and prints one JSON object of measured figures");
const url = pgbunUrl(o);
const warn = (message) => process.stderr.write(`load-test: warning: ${message}\n`);

/** pgbun's /stats, or the reason it could not be read. */
async function readStats() {
  if (o["stats-url"] === null) return { why: "no --stats-url" };
  try {
    const r = await fetch(`${o["stats-url"]}/stats`, { signal: AbortSignal.timeout(2000) });
    if (!r.ok) return { why: `GET ${o["stats-url"]}/stats answered ${r.status}` };
    const body = await r.json();
    if (!Array.isArray(body?.pools)) return { why: `GET ${o["stats-url"]}/stats has no pools list` };
    return { pool: body.pools.find((p) => p.database === o.database && p.user === o.user) ?? null };
  } catch (err) {
    return { why: `GET ${o["stats-url"]}/stats failed: ${err?.message ?? err}` };
  }
}

async function resetPeak() {
  if (o["stats-url"] === null) return;
  await fetch(`${o["stats-url"]}/stats/reset-peak`, { method: "POST", signal: AbortSignal.timeout(2000) }).catch(() => {});
}

/** Deltas of pgbun's counters for this run's pool; null figures (and a warning) when they cannot be known. */
function poolingFigures(before, after) {
  const unknown = { client_transactions: null, server_connections_opened: null, max_server_connections_used: null, reuse_efficiency_percent: null, pool_size: null };
  if (before.why !== undefined) return unknown; // warned at the start
  const why = after.why ?? (after.pool === null ? `pgbun reports no pool for database ${o.database}, user ${o.user}` : null);
  if (why !== null) {
    warn(`${why}: pooling figures will be null`);
    return unknown;
  }
  // A pool that did not exist before the run was created by it: its counters started at zero.
  const delta = (key) => after.pool[key] - (before.pool?.[key] ?? 0);
  const assignments = delta("total_server_assignment_count");
  return {
    client_transactions: delta("total_xact_count"),
    server_connections_opened: delta("server_connections_opened"),
    max_server_connections_used: after.pool.server_connections_peak,
    reuse_efficiency_percent: assignments > 0 ? Math.round(10000 * (1 - delta("total_server_assignment_fresh") / assignments)) / 100 : null,
    pool_size: after.pool.pool_size,
  };
}

class Recorder {
  total = 0;
  ok = 0;
  errors = 0;
  sum = 0;
  max = 0;
  seen = 0;
  samples = [];
  errorSamples = new Map();

  /** Runs one query, timing it; false when it failed. */
  async timed(query) {
    const t0 = performance.now();
    this.total++;
    try {
      await query();
    } catch (err) {
      this.errors++;
      const key = String(err?.message ?? err).slice(0, 160);
      if (this.errorSamples.size < 20 || this.errorSamples.has(key)) this.errorSamples.set(key, (this.errorSamples.get(key) ?? 0) + 1);
      return false;
    }
    const ms = performance.now() - t0;
    this.ok++;
    this.sum += ms;
    if (ms > this.max) this.max = ms;
    this.seen++;
    if (this.samples.length < MAX_SAMPLES) this.samples.push(ms);
    else {
      const j = Math.floor(Math.random() * this.seen);
      if (j < MAX_SAMPLES) this.samples[j] = ms;
    }
    return true;
  }

  latency() {
    if (this.ok === 0) return { avg: null, p50: null, p95: null, p99: null, max: null };
    const sorted = Float64Array.from(this.samples).sort();
    const pct = (p) => round(sorted[Math.max(0, Math.ceil((p / 100) * sorted.length) - 1)], 3);
    return { avg: round(this.sum / this.ok, 3), p50: pct(50), p95: pct(95), p99: pct(99), max: round(this.max, 3) };
  }
}

const round = (n, digits) => Math.round(n * 10 ** digits) / 10 ** digits;

/** One unit of work: a short transaction, or in statement mode a single statement. Returns the queries it ran. */
async function unit(sql, rec, id, n) {
  if (o.mode === "statement") {
    if (n % 2 === 0) await rec.timed(() => sql`SELECT balance FROM accounts WHERE id = ${id}`);
    else await rec.timed(() => sql`UPDATE accounts SET balance = balance + 1, updated = now() WHERE id = ${id}`);
    return 1;
  }
  const steps = [
    () => sql`BEGIN`,
    () => sql`SELECT balance FROM accounts WHERE id = ${id}`,
    () => sql`UPDATE accounts SET balance = balance + 1, updated = now() WHERE id = ${id}`,
    () => sql`COMMIT`,
  ];
  for (const [i, step] of steps.entries()) {
    if (!(await rec.timed(step))) {
      // Leave no transaction open on a connection that may still be alive (uncounted: not part of the workload).
      await sql`ROLLBACK`.catch(() => {});
      return i + 1;
    }
  }
  return steps.length;
}

async function runLoad(rec, deadline) {
  const clients = new Set();
  const counts = { opened: 0, dropped: 0 };
  const connect = () => {
    // No type fetch at connect: pgbun's transaction count then equals the workload's.
    const sql = postgres(url, {
      max: 1,
      prepare: true,
      fetch_types: false,
      idle_timeout: 0,
      connect_timeout: 10,
      onnotice: () => {},
      // A close we did not ask for: pgbun (or PostgreSQL) dropped the connection; postgres.js reconnects on the next query.
      onclose: () => {
        if (clients.has(sql)) counts.dropped++;
      },
    });
    counts.opened++;
    clients.add(sql);
    return sql;
  };
  const close = async (sql) => {
    clients.delete(sql);
    await sql.end({ timeout: 5 });
  };
  // Queries per unit, to turn --rate (queries per second across all clients) into a pause between units.
  const perUnit = o.mode === "statement" ? 1 : 4;
  const interval = o.rate > 0 ? (1000 * perUnit * o.concurrency) / o.rate : 0;

  async function client(index) {
    let sql = connect();
    let next = performance.now() + (interval * index) / o.concurrency;
    let sinceConnect = 0;
    for (let n = 0; n < MAX_UNITS_PER_CLIENT && performance.now() < deadline; n++) {
      if (interval > 0) {
        const wait = next - performance.now();
        if (wait > 0) await Bun.sleep(Math.min(wait, Math.max(0, deadline - performance.now())));
        if (performance.now() >= deadline) break;
        // Behind schedule (a slow server): catch up gently instead of bursting.
        next = Math.max(next + interval, performance.now());
      }
      const id = 1 + ((index * 7919 + n * 31) % ACCOUNTS);
      sinceConnect += await unit(sql, rec, id, n);
      if (o.scenario === "reconnect" && sinceConnect >= o["reconnect-every"]) {
        await close(sql);
        sql = connect();
        sinceConnect = 0;
      } else if (o.scenario === "idle") {
        await Bun.sleep(Math.max(0, Math.min(o["idle-gap"] * 1000, deadline - performance.now())));
      }
    }
    await close(sql);
  }

  // A client stuck in a query past the deadline is ended, so the run always finishes.
  const watchdog = setTimeout(() => {
    warn(`${clients.size} client(s) still busy ${GRACE_MS / 1000} s after the deadline: ending their connections`);
    for (const sql of clients) void sql.end({ timeout: 0 });
  }, Math.max(0, deadline - performance.now()) + GRACE_MS);
  await Promise.all(Array.from({ length: o.concurrency }, (_, i) => client(i)));
  clearTimeout(watchdog);
  return counts;
}

async function main() {
  await resetPeak();
  const before = await readStats();
  if (before.why !== undefined) warn(`${before.why}: pooling figures will be null`);
  if (o.mode === "session" && before.pool && o.concurrency > before.pool.pool_size && o.scenario !== "reconnect") {
    warn(`session mode with ${o.concurrency} clients over ${before.pool.pool_size} servers: each client holds a server for its whole session, so the others wait`);
  }
  const rec = new Recorder();
  const started = performance.now();
  const deadline = started + o.duration * 1000;
  const progress = setInterval(() => {
    const secs = (performance.now() - started) / 1000;
    process.stderr.write(`\rload-test ${o.mode}/${o.scenario}: ${secs.toFixed(0)}/${o.duration} s, ${rec.total} queries, ${rec.errors} errors, ${(rec.ok / secs).toFixed(0)} qps   `);
  }, 1000);

  let boundary = null;
  let connections = { opened: null, dropped: null };
  try {
    if (o.scenario === "boundary") boundary = await runBoundaryChecks(o);
    else connections = await runLoad(rec, deadline);
  } finally {
    clearInterval(progress);
    process.stderr.write("\n");
  }
  const elapsed = (performance.now() - started) / 1000;
  const after = await readStats();
  const measured = boundary === null;
  const result = {
    mode: o.mode,
    scenario: o.scenario,
    database: o.database,
    concurrency: measured ? o.concurrency : null,
    duration_seconds: round(elapsed, 3),
    total_queries: measured ? rec.total : null,
    successful_queries: measured ? rec.ok : null,
    errors: measured ? rec.errors : null,
    error_rate: measured ? (rec.total > 0 ? round(rec.errors / rec.total, 6) : 0) : null,
    throughput_qps: measured ? round(rec.ok / elapsed, 2) : null,
    latency_ms: rec.latency(),
    ...poolingFigures(before, after),
    client_connections_opened: connections.opened,
    client_connections_dropped: connections.dropped,
    ...(measured ? { error_samples: Object.fromEntries(rec.errorSamples) } : { boundary }),
  };
  const json = JSON.stringify(result, null, 2);
  console.log(json);
  if (o.out !== null) writeFileSync(o.out, json + "\n");
  const failed = measured ? rec.errors > 0 || rec.total === 0 : boundary.violations.length > 0;
  process.exit(failed ? 1 : 0);
}

main().catch((err) => {
  process.stderr.write(`load-test: ${err?.stack ?? err}\n`);
  process.exit(2);
});
