// Drives load through pgbun in one pool mode and prints one JSON object of measured figures.
// Latency and throughput are timed here; pooling figures are deltas of pgbun's own counters (GET /stats), never estimated.

import postgres from "postgres";
import { writeFileSync } from "node:fs";
import { optionsOrExit, pgbunUrl } from "./load-options.js";
import { configuredPoolSize, poolingFigures, readStats, resetPeak, RestartWatch } from "./load-stats.js";
import { runBoundaryChecks } from "./transaction-test.js";

/** Rows in init.sql's accounts table. */
const ACCOUNTS = 10_000;
const MAX_UNITS_PER_CLIENT = 10_000_000;
/** Past the deadline, clients still stuck in a query get this long before their connections are ended. */
const GRACE_MS = 30_000;
/** A ROLLBACK after a failed step that takes longer than this gives up the connection instead. */
const ROLLBACK_LIMIT_MS = 5_000;
/** The longest pause before reconnecting after a lost connection. */
const RETRY_MAX_MS = 1_000;
/** Latencies kept for percentiles; beyond this a uniform sample (avg and max stay exact). */
const MAX_SAMPLES = 2_000_000;

const o = optionsOrExit("load-test.js", "drives load through pgbun and prints one JSON object of measured figures");
const url = pgbunUrl(o);
const warn = (message) => process.stderr.write(`load-test: warning: ${message}\n`);

/**
 * Whether an error left the connection unusable: no SQLSTATE (the socket failed, closed or was refused) or a FATAL one.
 * Such a connection is replaced, never reused: postgres.js 3.4.9 loses a query sent between a socket's 'error' and
 * 'close' events (it then never settles), which is exactly when a client retries after pgbun goes away.
 */
const connectionLost = (err) => !(err instanceof postgres.PostgresError) || err.severity === "FATAL" || err.severity === "PANIC";

class Recorder {
  total = 0;
  ok = 0;
  errors = 0;
  sum = 0;
  max = 0;
  seen = 0;
  samples = [];
  errorSamples = new Map();
  /** When the last query settled: the run's throughput is averaged up to here, not over time spent ending stuck clients. */
  lastSettledAt = 0;

  /** Runs one query, timing it; the error it failed with, or null. */
  async timed(query) {
    const t0 = performance.now();
    this.total++;
    try {
      await query();
    } catch (err) {
      this.lastSettledAt = performance.now();
      this.errors++;
      const key = String(err?.message ?? err).slice(0, 160);
      if (this.errorSamples.size < 20 || this.errorSamples.has(key)) this.errorSamples.set(key, (this.errorSamples.get(key) ?? 0) + 1);
      return err ?? new Error("query failed");
    }
    this.lastSettledAt = performance.now();
    const ms = this.lastSettledAt - t0;
    this.ok++;
    this.sum += ms;
    if (ms > this.max) this.max = ms;
    this.seen++;
    if (this.samples.length < MAX_SAMPLES) this.samples.push(ms);
    else {
      const j = Math.floor(Math.random() * this.seen);
      if (j < MAX_SAMPLES) this.samples[j] = ms;
    }
    return null;
  }

  latency() {
    if (this.ok === 0) return { avg: null, p50: null, p95: null, p99: null, max: null };
    const sorted = Float64Array.from(this.samples).sort();
    const pct = (p) => round(sorted[Math.max(0, Math.ceil((p / 100) * sorted.length) - 1)], 3);
    return { avg: round(this.sum / this.ok, 3), p50: pct(50), p95: pct(95), p99: pct(99), max: round(this.max, 3) };
  }
}

const round = (n, digits) => Math.round(n * 10 ** digits) / 10 ** digits;

/** A ROLLBACK that gives up after ROLLBACK_LIMIT_MS; whether it finished (with or without an error). */
function boundedRollback(sql) {
  let timer;
  const limit = new Promise((resolve) => (timer = setTimeout(() => resolve(false), ROLLBACK_LIMIT_MS)));
  const done = sql`ROLLBACK`.then(() => true, () => true);
  return Promise.race([done, limit]).finally(() => clearTimeout(timer));
}

/**
 * One unit of work: a short transaction, or in statement mode a single statement. Returns the queries it ran, whether
 * pgbun answered any of them, and whether the connection must be replaced (lost, or a ROLLBACK that never finished).
 */
async function unit(sql, rec, id, n) {
  if (o.mode === "statement") {
    const err = await rec.timed(n % 2 === 0 ? () => sql`SELECT balance FROM accounts WHERE id = ${id}` : () => sql`UPDATE accounts SET balance = balance + 1, updated = now() WHERE id = ${id}`);
    return { queries: 1, answered: err === null || err instanceof postgres.PostgresError, lost: err !== null && connectionLost(err), abandon: false };
  }
  const steps = [
    () => sql`BEGIN`,
    () => sql`SELECT balance FROM accounts WHERE id = ${id}`,
    () => sql`UPDATE accounts SET balance = balance + 1, updated = now() WHERE id = ${id}`,
    () => sql`COMMIT`,
  ];
  for (const [i, step] of steps.entries()) {
    const err = await rec.timed(step);
    if (err === null) continue;
    // A lost connection took its transaction with it. On a live one, end the transaction (uncounted: not part of the workload).
    if (connectionLost(err)) return { queries: i + 1, answered: i > 0 || err instanceof postgres.PostgresError, lost: true, abandon: false };
    return { queries: i + 1, answered: true, lost: false, abandon: !(await boundedRollback(sql)) };
  }
  return { queries: steps.length, answered: true, lost: false, abandon: false };
}

async function runLoad(rec, deadline) {
  const clients = new Set();
  const counts = { opened: 0, dropped: 0, starved: 0 };
  const connect = () => {
    const conn = { sql: null, live: false, ours: false };
    // No type fetch at connect: pgbun's transaction count then equals the workload's.
    conn.sql = postgres(url, {
      max: 1,
      prepare: true,
      fetch_types: false,
      idle_timeout: 0,
      connect_timeout: 10,
      onnotice: () => {},
      // Called as each query is sent, which postgres.js does only on a logged-in connection: counts real logins,
      // including its own reconnects after a drop, and never a refused attempt.
      debug: () => {
        if (!conn.live) {
          conn.live = true;
          counts.opened++;
        }
      },
      // A close we did not ask for: pgbun (or PostgreSQL) dropped the connection; postgres.js reconnects on the next query.
      onclose: () => {
        if (conn.live && !conn.ours) counts.dropped++;
        conn.live = false;
      },
    });
    clients.add(conn);
    return conn;
  };
  const close = async (conn) => {
    conn.ours = true;
    clients.delete(conn);
    await conn.sql.end({ timeout: 5 });
  };
  /** Gives up a connection without waiting for it; a lost one that had logged in counts as dropped. */
  const replace = (conn, lost) => {
    if (lost && conn.live && !conn.ours) counts.dropped++;
    conn.ours = true;
    clients.delete(conn);
    void conn.sql.end({ timeout: 0 }).catch(() => {});
    return connect();
  };
  // Queries per unit, to turn --rate (queries per second across all clients) into a pause between units.
  const perUnit = o.mode === "statement" ? 1 : 4;
  const interval = o.rate > 0 ? (1000 * perUnit * o.concurrency) / o.rate : 0;

  async function client(index) {
    let conn = connect();
    let next = performance.now() + (interval * index) / o.concurrency;
    let sinceConnect = 0;
    let served = false;
    let lost = 0;
    for (let n = 0; n < MAX_UNITS_PER_CLIENT && performance.now() < deadline; n++) {
      if (interval > 0) {
        const wait = next - performance.now();
        if (wait > 0) await Bun.sleep(Math.min(wait, Math.max(0, deadline - performance.now())));
        if (performance.now() >= deadline) break;
        // Behind schedule (a slow server): catch up gently instead of bursting.
        next = Math.max(next + interval, performance.now());
      }
      const id = 1 + ((index * 7919 + n * 31) % ACCOUNTS);
      const done = await unit(conn.sql, rec, id, n);
      // Answered only after the deadline: the client waited the whole run (a session-mode client without a server).
      if (done.answered && performance.now() < deadline) served = true;
      sinceConnect += done.queries;
      // Consecutive connections lost without an answer: pgbun is down or restarting.
      lost = done.lost || done.abandon ? (done.answered ? 1 : lost + 1) : 0;
      if (lost > 0) {
        conn = replace(conn, done.lost);
        sinceConnect = 0;
        // Back off (up to 1 s, never past the deadline) instead of spinning on refused connections.
        await Bun.sleep(Math.min(RETRY_MAX_MS, 25 * 2 ** lost, Math.max(0, deadline - performance.now())));
      } else if (o.scenario === "reconnect" && sinceConnect >= o["reconnect-every"]) {
        await close(conn);
        conn = connect();
        sinceConnect = 0;
      } else if (o.scenario === "idle") {
        await Bun.sleep(Math.max(0, Math.min(o["idle-gap"] * 1000, deadline - performance.now())));
      }
    }
    if (!served) counts.starved++;
    await close(conn);
  }

  // A client stuck in a query past the deadline is ended, so the run always finishes.
  const watchdog = setTimeout(() => {
    warn(`${clients.size} client(s) still busy ${GRACE_MS / 1000} s after the deadline: ending their connections`);
    for (const conn of clients) void conn.sql.end({ timeout: 0 });
  }, Math.max(0, deadline - performance.now()) + GRACE_MS);
  await Promise.all(Array.from({ length: o.concurrency }, (_, i) => client(i)));
  clearTimeout(watchdog);
  return counts;
}

/** Session mode gives each client a server for its whole session: clients beyond the pool size wait the whole run. */
async function warnSessionOversubscribed(before) {
  if (o.mode !== "session" || o.scenario === "reconnect" || o.scenario === "boundary") return;
  // A pool that does not exist yet is not in /stats: then the admin console tells its configured size.
  const size = before.pool?.pool_size ?? (await configuredPoolSize(o));
  if (size !== null && o.concurrency > size) {
    warn(
      `session mode with ${o.concurrency} clients over ${size} servers: each client holds a server for its whole session, ` +
        `so ${o.concurrency - size} will wait the whole run (use --concurrency=${size}, or transaction mode)`,
    );
  }
}

async function main() {
  await resetPeak(o);
  const before = await readStats(o);
  if (before.why !== undefined) warn(`${before.why}: pooling figures will be null`);
  await warnSessionOversubscribed(before);
  const watch = new RestartWatch(o, before);
  const rec = new Recorder();
  const started = performance.now();
  const deadline = started + o.duration * 1000;
  const progress = setInterval(() => {
    const secs = (performance.now() - started) / 1000;
    process.stderr.write(`\rload-test ${o.mode}/${o.scenario}: ${secs.toFixed(0)}/${o.duration} s, ${rec.total} queries, ${rec.errors} errors, ${(rec.ok / secs).toFixed(0)} qps   `);
    watch.poll();
  }, 1000);

  let boundary = null;
  let connections = { opened: null, dropped: null, starved: null };
  try {
    if (o.scenario === "boundary") boundary = await runBoundaryChecks(o);
    else connections = await runLoad(rec, deadline);
  } finally {
    clearInterval(progress);
    process.stderr.write("\n");
  }
  const ended = performance.now();
  const elapsed = (ended - started) / 1000;
  // Stragglers ended by the watchdog add wall time but no queries: average up to the last query that settled.
  const busy = (Math.min(ended, Math.max(deadline, rec.lastSettledAt)) - started) / 1000;
  const after = await readStats(o);
  await watch.finish(after);
  const measured = boundary === null;
  const pooling = poolingFigures(o, before, after, watch.restarts, elapsed);
  if (pooling.why !== null && before.why === undefined) warn(`${pooling.why}: pooling figures will be null`);
  if (watch.restarts > 0) {
    warn(
      `pgbun restarted during the run (${watch.restarts === 1 ? "once" : `${watch.restarts} times`}): its counters started again from zero, so the ` +
        `pooling figures cover only the last ${pooling.figures.pooling_seconds ?? "?"} s; the client-side figures cover the whole run`,
    );
  }
  if (measured && connections.starved > 0) {
    warn(`${connections.starved} of ${o.concurrency} clients got no answer before the deadline: they waited for a server the whole run`);
  }
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
    throughput_qps: measured ? round(rec.ok / busy, 2) : null,
    latency_ms: rec.latency(),
    ...pooling.figures,
    client_connections_opened: connections.opened,
    client_connections_dropped: connections.dropped,
    clients_starved: connections.starved,
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
