// Entry of `bun run bench`: PostgreSQL, PgBouncer and pgbun side by side under pgbench, then idle-client memory; writes bench/results.

import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { LOGIN, resetTpcb, startBenchDatabase } from "./database.ts";
import { htmlPage } from "./html.ts";
import { plannedRuns, runMatrix, warmUp, type MatrixOptions, type MatrixTarget } from "./matrix.ts";
import { idleSteps, measureIdleMemorySteps, type IdleMemoryResult } from "./memory.ts";
import { DIRECT_HEADROOM, MAX_CLIENT_CONN, parseOptions, PG_MAX_CONNECTIONS, planPoints, POOL_SIZE, PREPARE_UNNAMED_POINTS, samePoint, secondsFor, UNIX_POINTS, WORKERS_POINTS } from "./plan.ts";
import { EXTRA_TARGETS, PGBOUNCER_UNIX_KEY, PGBUN_UNIX_KEY, PREPARE_UNNAMED_KEY, textReport, type AddedLatency, type BenchResults, type PointResult } from "./report.ts";
import { commandVersion, ensureFileLimit, machine } from "./system.ts";
import { runTlsPoints } from "./tls.ts";
import { runHaBench, type HaResults } from "./ha.ts";
import type { PgbenchPoint } from "./pgbench.ts";
import { findPgbouncer, pgbouncerSupportsPrepared, pgbouncerVersion, pgbunHasWorkers, startPgbouncer, startPgbunTarget, type RunningPooler } from "./targets.ts";

const REPO = join(import.meta.dir, "..");

// Ctrl-C or a kill still runs the exit hooks that stop PostgreSQL and the poolers.
process.on("SIGINT", () => process.exit(130));
process.on("SIGTERM", () => process.exit(143));

const opts = (() => {
  try {
    return parseOptions(Bun.argv.slice(2));
  } catch (err) {
    // A bad option is the user's to fix: the message (with the usage), not a stack trace.
    console.error((err as Error).message);
    process.exit(2);
  }
})();
const startedAt = new Date();
const t0 = performance.now();
const notes: string[] = [];
const say = (s: string) => console.log(s);

// 1000 pgbench clients, and N idle clients held by a child process while the pooler holds the other end.
const need = Math.max(1000, opts.idleClients) + 300;
const limit = ensureFileLimit(need);
if (limit < need) {
  const fits = Math.max(0, limit - 300);
  notes.push(`open-file limit is ${limit} (need ${need}): idle clients cut from ${opts.idleClients} to ${fits}; raise it with ulimit -n or prlimit`);
  opts.idleClients = Math.min(opts.idleClients, fits);
}

function gitRevision(): string {
  const head = Bun.spawnSync(["git", "rev-parse", "--short", "HEAD"], { cwd: REPO, stdout: "pipe", stderr: "ignore" }).stdout.toString().trim();
  const dirty = Bun.spawnSync(["git", "status", "--porcelain", "src"], { cwd: REPO, stdout: "pipe", stderr: "ignore" }).stdout.toString().trim();
  return `${head || "unknown"}${dirty ? " (src/ has uncommitted changes)" : ""}`;
}

say(`starting PostgreSQL (max_connections ${PG_MAX_CONNECTIONS}) and pgbench -i -s ${opts.scale} ...`);
const { pg, secret, socketDir } = await startBenchDatabase({ maxConnections: PG_MAX_CONNECTIONS, scale: opts.scale, auth: opts.auth });

const bouncerBin = findPgbouncer();
const bouncerVersion = bouncerBin ? pgbouncerVersion(bouncerBin) : null;
if (!bouncerBin) {
  say("PgBouncer not found: install it with `apt-get install -y pgbouncer` (Debian/Ubuntu). Measuring pgbun and direct only.");
  notes.push("PgBouncer was not installed (apt-get install -y pgbouncer): its columns are empty");
}
const bouncerPrepared = bouncerVersion !== null && pgbouncerSupportsPrepared(bouncerVersion);
if (bouncerVersion && !bouncerPrepared) notes.push(`PgBouncer ${bouncerVersion} has no prepared statements in transaction mode (1.21+): its -M prepared points are "unsupported"`);

const extraWorkers = opts.workers.filter((w) => w > 1);
const hasWorkers = extraWorkers.length > 0 && pgbunHasWorkers();
if (extraWorkers.length > 0 && !hasWorkers) {
  say(`pgbun has no --workers option (bun src/main.ts --help): measuring 1 worker only`);
  notes.push("--workers was asked for, but this pgbun has no --workers option: only 1 worker was measured");
}

const points = planPoints(opts.quick, opts.onlyNew);
// An extra target measured only at some points starts only if one of them is in this run's plan.
const planned = (only: PgbenchPoint[]) => points.some((p) => only.some((q) => samePoint(p, q)));

const settings = { poolSize: POOL_SIZE, maxClientConn: MAX_CLIENT_CONN, auth: opts.auth };
const pgbun = await startPgbunTarget(pg.port, settings);
const bouncer = bouncerBin ? await startPgbouncer(bouncerBin, pg.port, secret, settings) : null;
const workerPoolers = hasWorkers && planned(WORKERS_POINTS) ? await Promise.all(extraWorkers.slice(0, 1).map((w) => startPgbunTarget(pg.port, settings, w))) : [];
// pgbun with prepare_unnamed = true, and both poolers over PostgreSQL's Unix socket (pgbench reaches them over TCP).
const pgbunUnnamed = planned(PREPARE_UNNAMED_POINTS) ? await startPgbunTarget(pg.port, settings, 1, undefined, { prepareUnnamed: true }) : null;
const pgbunUnix = planned(UNIX_POINTS) ? await startPgbunTarget(pg.port, settings, 1, undefined, { socketDir }) : null;
const bouncerUnix = bouncerBin && planned(UNIX_POINTS) ? await startPgbouncer(bouncerBin, pg.port, secret, settings, undefined, { socketDir }) : null;

const directMax = PG_MAX_CONNECTIONS - DIRECT_HEADROOM;
const poolerTarget = (key: string, p: RunningPooler, exclude: MatrixTarget["exclude"] = () => null, watchCpu = true, only?: PgbenchPoint[]): MatrixTarget => ({
  key,
  port: p.port,
  exclude,
  alive: p.alive,
  logTail: p.logTail,
  ...(watchCpu ? { pid: p.pid } : {}),
  ...(only ? { only } : {}),
});
const bouncerExclude: MatrixTarget["exclude"] = (p) => (p.mode === "prepared" && !bouncerPrepared ? { status: "unsupported", reason: `PgBouncer ${bouncerVersion} in transaction mode` } : null);
const targets: MatrixTarget[] = [
  poolerTarget("pgbun", pgbun),
  ...(bouncer ? [poolerTarget("PgBouncer", bouncer, bouncerExclude)] : []),
  {
    key: "direct",
    port: pg.port,
    exclude: (p) => (p.clients > directMax ? { status: "skipped", reason: `${p.clients} clients exceed max_connections ${PG_MAX_CONNECTIONS} less the poolers' servers` } : null),
    alive: () => true,
    logTail: () => "",
  },
  // Only the first extra worker count is measured (a note says so when more were asked for).
  ...workerPoolers.map((w) => poolerTarget(`pgbun-w${extraWorkers[0]}`, w, () => null, false, WORKERS_POINTS)),
  ...(pgbunUnnamed ? [poolerTarget(PREPARE_UNNAMED_KEY, pgbunUnnamed, () => null, true, PREPARE_UNNAMED_POINTS)] : []),
  ...(pgbunUnix ? [poolerTarget(PGBUN_UNIX_KEY, pgbunUnix, () => null, true, UNIX_POINTS)] : []),
  ...(bouncerUnix ? [poolerTarget(PGBOUNCER_UNIX_KEY, bouncerUnix, bouncerExclude, true, UNIX_POINTS)] : []),
];

const matrixOptions: MatrixOptions = {
  rounds: opts.rounds,
  seconds: (p) => secondsFor(p, opts),
  ...LOGIN,
  beforeTpcb: () => resetTpcb(pg),
};
if (extraWorkers.length > 1) notes.push(`only ${extraWorkers[0]} workers were measured; further worker counts are ignored`);

const plan = plannedRuns(points, targets, matrixOptions);
say(`${points.length} points through ${targets.map((t) => t.key).join(", ")}, ${opts.rounds} round(s): ${plan.runs} pgbench runs, ${plan.seconds} s of -T in all`);

await warmUp(targets, matrixOptions, opts.quick ? 1 : 2, opts.quick ? ["extended"] : ["simple", "extended", "prepared"]);
const results: PointResult[] = await runMatrix(points, targets, matrixOptions);

for (const p of [...workerPoolers, ...[bouncerUnix, pgbunUnix, pgbunUnnamed, bouncer].filter((x): x is RunningPooler => x !== null), pgbun]) await p.stop();

// Added latency at one client: the pooler's median latency minus direct's, in each mode measured at c=1.
const addedLatency: AddedLatency[] = [];
for (const p of results) {
  const direct = p.targets.direct?.medianLatencyMs;
  const mine = p.targets.pgbun?.medianLatencyMs;
  if (p.script !== "select-only" || p.clients !== 1 || !direct || !mine) continue;
  const b = p.targets.PgBouncer?.medianLatencyMs;
  addedLatency.push({ mode: p.mode, directUs: direct * 1000, pgbunUs: mine * 1000, pgbouncerUs: b ? b * 1000 : null });
}

let tlsPoints: PointResult[] = [];
if (opts.tls) {
  say("TLS: pgbench with sslmode=require and disable through pgbun and PgBouncer with client TLS on ...");
  tlsPoints = await runTlsPoints(pg.port, secret, settings, bouncerBin, matrixOptions, 1);
}

let ha: HaResults | undefined;
if (opts.ha) {
  say("high availability: a primary and a streaming replica behind pgbun; latency at one client, then failovers under pgbench ...");
  ha = await runHaBench({ rounds: opts.rounds, seconds: opts.seconds, failovers: opts.quick ? 1 : 2, say });
}

const idleMemory: IdleMemoryResult[] = [];
if (opts.idleClients > 0) {
  const memSettings = { ...settings, maxClientConn: opts.idleClients + 1000 };
  say(`memory: ${opts.idleClients} idle clients through a fresh pgbun${bouncerBin ? " and a fresh PgBouncer" : ""} ...`);
  const fresh: Array<() => Promise<RunningPooler>> = [() => startPgbunTarget(pg.port, memSettings), ...(bouncerBin ? [() => startPgbouncer(bouncerBin, pg.port, secret, memSettings)] : [])];
  for (const start of fresh) {
    const pooler = await start();
    try {
      idleMemory.push(...(await measureIdleMemorySteps(pooler, idleSteps(opts.idleClients))));
    } finally {
      await pooler.stop();
    }
  }
}

const pgVersion = await pg.psql("SHOW server_version");
await pg.stop();

const report: BenchResults = {
  startedAt: startedAt.toISOString(),
  durationSeconds: (performance.now() - t0) / 1000,
  options: { ...opts },
  machine: machine(),
  versions: {
    bun: Bun.version,
    postgres: `PostgreSQL ${pgVersion}`,
    pgbouncer: bouncerVersion ? `PgBouncer ${bouncerVersion}` : "PgBouncer not installed",
    pgbench: commandVersion(["pgbench", "--version"]),
    pgbun: `${(await Bun.file(join(REPO, "package.json")).json()).version} at ${gitRevision()}`,
  },
  settings: { poolMode: "transaction", poolSize: POOL_SIZE, maxClientConn: MAX_CLIENT_CONN, pgMaxConnections: PG_MAX_CONNECTIONS, auth: `${opts.auth} logins` },
  extraTargets: Object.fromEntries(Object.entries(EXTRA_TARGETS).filter(([k]) => targets.some((t) => t.key.replace(/^pgbun-w\d+$/, "pgbun-wN") === k))),
  points: results,
  addedLatency,
  idleMemory,
  ...(opts.tls ? { tls: tlsPoints } : {}),
  ...(ha ? { ha } : {}),
  notes: [...notes, ...failureNotes([...results, ...tlsPoints])],
};

function failureNotes(points: PointResult[]): string[] {
  const out: string[] = [];
  for (const p of points) {
    for (const [key, t] of Object.entries(p.targets)) {
      const errors = t.runs.filter((r) => !r.ok);
      const killed = errors.filter((r) => r.killed).length;
      if (errors.length) out.push(`${p.name} through ${key}: ${errors.length} of ${t.runs.length} runs failed${killed ? ` (${killed} stalled past -T and killed)` : ""}: ${errors[0]!.error}`);
      if (t.failedTransactions) out.push(`${p.name} through ${key}: ${t.failedTransactions} failed transactions`);
      if (t.abortedClients) out.push(`${p.name} through ${key}: pgbench aborted ${t.abortedClients} clients on errors`);
    }
  }
  return out;
}

const dir = join(import.meta.dir, "results");
mkdirSync(dir, { recursive: true });
const stamp = startedAt.toISOString().replace(/[:.]/g, "-");
writeFileSync(join(dir, `${stamp}.json`), JSON.stringify(report, null, 2) + "\n");
writeFileSync(join(dir, `${stamp}.html`), htmlPage(report));
say("");
say(textReport(report));
say(`\nwrote bench/results/${stamp}.json and bench/results/${stamp}.html`);
