// What a run measures: the command-line options, the pgbench points, rounds and seconds per point for full and --quick.

import { parseArgs } from "node:util";
import type { PgbenchPoint, QueryMode } from "./pgbench.ts";

export type BenchAuth = "md5" | "scram-sha-256";

export interface BenchOptions {
  quick: boolean;
  /** How pgbench and the idle clients log in, to every target alike. */
  auth: BenchAuth;
  rounds: number;
  /** pgbench -T per point. */
  seconds: number;
  /** pgbun worker counts to measure; counts above 1 run only at the -S simple 100-client point. */
  workers: number[];
  /** Idle clients for the memory measurement; 0 skips it. */
  idleClients: number;
  /** pgbench -i -s. */
  scale: number;
  /** The TLS points (bench/tls.ts); --no-tls skips them. */
  tls: boolean;
  /** High availability (bench/ha.ts): latency at one client over two hosts, and failover recovery; --no-ha skips it. */
  ha: boolean;
  /** Only the points of issue 15's rows: prepare_unnamed, the Unix socket, TPC-B -M prepared (--only-new). */
  onlyNew: boolean;
}

export const POOL_SIZE = 20;
export const MAX_CLIENT_CONN = 2000;
/**
 * Poolers that hold up to POOL_SIZE servers each for the whole matrix (idle servers stay open): pgbun, PgBouncer,
 * pgbun with 2 workers (which share one pool size), pgbun with prepare_unnamed, and pgbun and PgBouncer over the Unix socket.
 */
export const POOLERS_HOLDING_SERVERS = 6;
/** Enough for the 1000-client direct points plus the poolers' servers and psql. */
export const PG_MAX_CONNECTIONS = 1200;
/** Direct runs need this many of max_connections left for the poolers' servers and superuser_reserved_connections. */
export const DIRECT_HEADROOM = POOLERS_HOLDING_SERVERS * POOL_SIZE + 10;
/** The points at which extra pgbun workers are measured: the many-client ones, where a second core could matter. */
export const WORKERS_POINTS: PgbenchPoint[] = [
  { script: "select-only", mode: "simple", clients: 100 },
  { script: "select-only", mode: "simple", clients: 1000 },
];
/** The points at which pgbun also runs with prepare_unnamed = true: -S -M extended, pgbench's unnamed Parse/Bind/Execute. */
export const PREPARE_UNNAMED_POINTS: PgbenchPoint[] = [
  { script: "select-only", mode: "extended", clients: 10 },
  { script: "select-only", mode: "extended", clients: 100 },
];
/** The points at which pgbun and PgBouncer also reach PostgreSQL over its Unix socket (pgbench still reaches them over TCP). */
export const UNIX_POINTS: PgbenchPoint[] = [
  { script: "select-only", mode: "simple", clients: 10 },
  { script: "select-only", mode: "extended", clients: 10 },
  { script: "select-only", mode: "simple", clients: 100 },
  { script: "select-only", mode: "extended", clients: 100 },
];
/**
 * TPC-B with -M prepared, 100 clients on 2 pgbench threads over 20 servers: each thread's clients outnumber the servers,
 * and pgbench prepares each statement with a synchronous PQprepare the first time a client runs it.
 */
export const TPCB_PREPARED: PgbenchPoint = { script: "tpcb", mode: "prepared", clients: 100 };

const USAGE = `usage: bun bench/run.ts [--quick] [--workers 1,2] [--auth md5|scram-sha-256] [--rounds N] [--seconds S] [--idle-clients N] [--scale N]
  --quick          a few points, 1 round, short runs, 1000 idle clients: about 2 minutes
  --auth A         md5 (default) or scram-sha-256 for every login; SCRAM makes 1000-client points run 10 s longer
  --workers 1,N    also measure pgbun with N workers at -S -M simple -c 100 and -c 1000 (default 1,2; quick 1)
  --rounds N       rounds of the whole matrix (default 3, quick 1); medians are taken across rounds
  --seconds S      pgbench -T per point (default 3, quick 2)
  --idle-clients N idle clients for the memory measurement (default 10000, quick 1000; 0 skips it)
  --scale N        pgbench -i -s (default 10)
  --no-tls         skip the TLS points (-S c=10 and c=100 and -C over TLS beside plain text, pgbun and PgBouncer)
  --no-ha          skip high availability (added latency at one client over two hosts, failover recovery with a streaming replica)
  --only-new       only the points with prepare_unnamed, Unix-socket and TPC-B -M prepared rows (of the full or --quick plan)`;

function positiveInt(name: string, raw: string | undefined, fallback: number, min = 1): number {
  if (raw === undefined) return fallback;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < min) throw new Error(`--${name} must be an integer >= ${min}, got ${JSON.stringify(raw)}\n${USAGE}`);
  return n;
}

export function parseOptions(argv: string[]): BenchOptions {
  let parsed;
  try {
    parsed = parseArgs({
      args: argv,
      options: {
        quick: { type: "boolean", default: false },
        workers: { type: "string" },
        auth: { type: "string", default: "md5" },
        rounds: { type: "string" },
        seconds: { type: "string" },
        "idle-clients": { type: "string" },
        scale: { type: "string" },
        "no-tls": { type: "boolean", default: false },
        "no-ha": { type: "boolean", default: false },
        "only-new": { type: "boolean", default: false },
        help: { type: "boolean", short: "h", default: false },
      },
      strict: true,
    });
  } catch (err) {
    // parseArgs names an unknown option but not the known ones.
    throw new Error(`${(err as Error).message}\n${USAGE}`);
  }
  const { values } = parsed;
  if (values.help) {
    console.log(USAGE);
    process.exit(0);
  }
  const quick = values.quick ?? false;
  const workers = (values.workers ?? (quick ? "1" : "1,2")).split(",").map((w) => positiveInt("workers", w.trim(), 1));
  if (values.auth !== "md5" && values.auth !== "scram-sha-256") throw new Error(`--auth must be md5 or scram-sha-256, got ${JSON.stringify(values.auth)}\n${USAGE}`);
  return {
    quick,
    auth: values.auth,
    rounds: positiveInt("rounds", values.rounds, quick ? 1 : 3),
    seconds: positiveInt("seconds", values.seconds, quick ? 2 : 3),
    workers: [...new Set(workers)].sort((a, b) => a - b),
    idleClients: positiveInt("idle-clients", values["idle-clients"], quick ? 1000 : 10_000, 0),
    scale: positiveInt("scale", values.scale, 10),
    tls: !values["no-tls"],
    ha: !values["no-ha"],
    onlyNew: values["only-new"] ?? false,
  };
}

/**
 * pgbench's -T clock starts before its clients connect (PostgreSQL 15), and 1000 libpq logins take seconds on
 * 2 cores: about 2 s with md5, 5 to 9 s with SCRAM (libpq's own PBKDF2, 4096 rounds per login). The 1000-client
 * points get that much longer, so each still measures about -T seconds; pgbench's TPS excludes the connection time.
 */
export function secondsFor(p: PgbenchPoint, o: Pick<BenchOptions, "seconds" | "auth">): number {
  if (p.clients < 1000) return o.seconds;
  return o.seconds + (o.auth === "md5" ? 3 : 10);
}

const MODES: QueryMode[] = ["simple", "extended", "prepared"];

/**
 * -S in each query mode at 1, 10, 100 and 1000 clients, then TPC-B -M simple at 10 and 100 and TPC-B -M prepared at 100.
 * Quick: -S simple c=1, -S extended c=10, -S in each mode at c=100, TPC-B simple c=10 and prepared c=100.
 */
export function planPoints(quick: boolean, onlyNew = false): PgbenchPoint[] {
  const all = allPoints(quick);
  if (!onlyNew) return all;
  const fresh = [...PREPARE_UNNAMED_POINTS, ...UNIX_POINTS, TPCB_PREPARED];
  return all.filter((p) => fresh.some((q) => samePoint(p, q)));
}

function allPoints(quick: boolean): PgbenchPoint[] {
  if (quick) {
    return [
      { script: "select-only", mode: "simple", clients: 1 },
      { script: "select-only", mode: "extended", clients: 10 },
      ...MODES.map((mode): PgbenchPoint => ({ script: "select-only", mode, clients: 100 })),
      { script: "tpcb", mode: "simple", clients: 10 },
      TPCB_PREPARED,
    ];
  }
  const points: PgbenchPoint[] = [];
  for (const clients of [1, 10, 100, 1000]) for (const mode of MODES) points.push({ script: "select-only", mode, clients });
  for (const clients of [10, 100]) points.push({ script: "tpcb", mode: "simple", clients });
  points.push(TPCB_PREPARED);
  return points;
}

/**
 * How long pgbench may outlive -T before it is killed and its run recorded as stalled: 1000 clients need time to
 * connect and disconnect; fewer need a second or two, so a client stuck in a synchronous call costs at most 20 s.
 */
export function graceFor(p: PgbenchPoint): number {
  return p.clients >= 1000 ? 60 : 20;
}

export function pointName(p: PgbenchPoint): string {
  return `${p.script === "select-only" ? "-S" : "TPC-B"} ${p.mode}${p.reconnect ? " -C" : ""} c=${p.clients}`;
}

export function samePoint(a: PgbenchPoint, b: PgbenchPoint): boolean {
  return a.script === b.script && a.mode === b.mode && a.clients === b.clients && !a.reconnect === !b.reconnect;
}
