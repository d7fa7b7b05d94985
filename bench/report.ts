// The results of a run: medians and ratios per point, and the same table as Markdown for the terminal and the README.

import { haLines, type HaResults } from "./ha.ts";
import type { IdleMemoryResult } from "./memory.ts";
import type { PgbenchPoint, PgbenchResult } from "./pgbench.ts";
import { pointName } from "./plan.ts";
import type { Machine } from "./system.ts";

export type TargetStatus = "ok" | "error" | "unsupported" | "skipped";

export interface TargetResult {
  status: TargetStatus;
  /** Why the target is unsupported, skipped or failed. */
  reason?: string;
  runs: PgbenchResult[];
  medianTps: number | null;
  medianLatencyMs: number | null;
  /** The pooler's CPU time per transaction in µs (median across rounds; logins included), when it was watched. */
  medianCpuUsPerXact?: number | null;
  /** pgbench's "number of failed transactions", summed over the rounds. */
  failedTransactions: number;
  /** Clients pgbench aborted on an error, summed over the rounds: each lost its transaction (absent in older results). */
  abortedClients?: number;
  /** Runs that failed (pgbench exit status, no result) or stalled and were killed, of runs.length. */
  failedRuns?: number;
  /** Of failedRuns, those that stalled past -T plus the grace and were killed: their failures are unknown. */
  stalledRuns?: number;
}

/**
 * Targets are "pgbun", "PgBouncer", "direct", and the extra targets of EXTRA_TARGETS, each measured at a few points:
 * "pgbun-wN" (pgbun with N workers), "pgbun prepare_unnamed", "pgbun unix" and "PgBouncer unix".
 */
export interface PointResult extends PgbenchPoint {
  name: string;
  threads: number;
  seconds: number;
  targets: Record<string, TargetResult>;
}

export interface AddedLatency {
  mode: string;
  directUs: number;
  pgbunUs: number;
  pgbouncerUs: number | null;
}

export interface BenchResults {
  startedAt: string;
  durationSeconds: number;
  options: { quick: boolean; rounds: number; seconds: number; workers: number[]; idleClients: number; scale: number };
  machine: Machine;
  versions: Record<string, string>;
  settings: { poolMode: string; poolSize: number; maxClientConn: number; pgMaxConnections: number; auth: string };
  /** The extra targets this run measured (keys of EXTRA_TARGETS, "pgbun-wN" for any worker count) and what each is. */
  extraTargets?: Record<string, string>;
  points: PointResult[];
  addedLatency: AddedLatency[];
  idleMemory: IdleMemoryResult[];
  /** The TLS points (bench/tls.ts): targets "pgbun", "pgbun TLS", "PgBouncer", "PgBouncer TLS"; absent with --no-tls. */
  tls?: PointResult[];
  /** High availability (bench/ha.ts); absent with --no-ha. */
  ha?: HaResults;
  notes: string[];
}

export function median(xs: number[]): number | null {
  if (xs.length === 0) return null;
  const s = [...xs].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
}

export function summarise(runs: PgbenchResult[]): TargetResult {
  const ok = runs.filter((r) => r.ok);
  const failedTransactions = runs.reduce((n, r) => n + (r.failed ?? 0), 0);
  const abortedClients = runs.reduce((n, r) => n + (r.abortedClients ?? 0), 0);
  const failedRuns = runs.length - ok.length;
  const stalledRuns = runs.filter((r) => r.killed).length;
  const counts = { failedTransactions, abortedClients, failedRuns, stalledRuns };
  if (ok.length === 0) return { status: "error", reason: runs.map((r) => r.error).find(Boolean) ?? "no run", runs, medianTps: null, medianLatencyMs: null, ...counts };
  return {
    status: "ok",
    runs,
    medianTps: median(ok.map((r) => r.tps!)),
    medianLatencyMs: median(ok.map((r) => r.latencyMs!)),
    medianCpuUsPerXact: median(ok.filter((r) => r.poolerCpuMs != null && r.transactions).map((r) => (r.poolerCpuMs! * 1000) / r.transactions!)),
    ...counts,
  };
}

export function notRun(status: "unsupported" | "skipped", reason: string): TargetResult {
  return { status, reason, runs: [], medianTps: null, medianLatencyMs: null, failedTransactions: 0, abortedClients: 0, failedRuns: 0, stalledRuns: 0 };
}

/**
 * a's throughput relative to b's: the median of the per-round ratios, each taken from two runs made one after the
 * other, so drift that lasts a round cancels out. Falls back to the ratio of the medians when the rounds do not pair up.
 */
export function ratio(a: TargetResult | undefined, b: TargetResult | undefined): number | null {
  if (!a?.medianTps || !b?.medianTps) return null;
  if (a.runs.length !== b.runs.length) return a.medianTps / b.medianTps;
  const paired: number[] = [];
  a.runs.forEach((r, i) => {
    const other = b.runs[i]!;
    if (r.ok && other.ok && other.tps) paired.push(r.tps! / other.tps);
  });
  return median(paired) ?? a.medianTps / b.medianTps;
}

export function newPoint(p: PgbenchPoint, threads: number, seconds: number): PointResult {
  return { ...p, name: pointName(p), threads, seconds, targets: {} };
}

/** One table row per point, plus one per extra target (or pair of them) measured at that point. */
export interface Row {
  label: string;
  pgbun: TargetResult | undefined;
  pgbouncer: TargetResult | undefined;
  direct: TargetResult | undefined;
}

export const PREPARE_UNNAMED_KEY = "pgbun prepare_unnamed";
export const PGBUN_UNIX_KEY = "pgbun unix";
export const PGBOUNCER_UNIX_KEY = "PgBouncer unix";

/** What each extra target is, for the report's notes and the JSON. */
export const EXTRA_TARGETS: Record<string, string> = {
  "pgbun-wN": "pgbun with workers = N (SO_REUSEPORT processes sharing the pool size), beside the same PgBouncer and direct runs",
  [PREPARE_UNNAMED_KEY]: "pgbun with prepare_unnamed = true, beside the same PgBouncer and direct runs (the point's first row is pgbun with it off)",
  [PGBUN_UNIX_KEY]: "pgbun reaching PostgreSQL over its Unix socket (database host = the socket folder); pgbench still connects to pgbun over TCP",
  [PGBOUNCER_UNIX_KEY]: "PgBouncer reaching PostgreSQL over its Unix socket (host=the socket folder); pgbench still connects to it over TCP",
};

export function rows(points: PointResult[]): Row[] {
  const out: Row[] = [];
  for (const p of points) {
    const t = p.targets;
    out.push({ label: p.name, pgbun: t.pgbun, pgbouncer: t.PgBouncer, direct: t.direct });
    for (const [key, r] of Object.entries(t)) {
      const m = key.match(/^pgbun-w(\d+)$/);
      if (m) out.push({ label: `${p.name}, pgbun ${m[1]} workers`, pgbun: r, pgbouncer: t.PgBouncer, direct: t.direct });
    }
    if (t[PREPARE_UNNAMED_KEY]) out.push({ label: `${p.name}, pgbun prepare_unnamed`, pgbun: t[PREPARE_UNNAMED_KEY], pgbouncer: t.PgBouncer, direct: t.direct });
    // Both poolers over the socket side by side; direct is pgbench over TCP, as in every other row.
    if (t[PGBUN_UNIX_KEY] || t[PGBOUNCER_UNIX_KEY]) out.push({ label: `${p.name}, poolers over Unix socket`, pgbun: t[PGBUN_UNIX_KEY], pgbouncer: t[PGBOUNCER_UNIX_KEY], direct: t.direct });
  }
  return out;
}

const cell = (t: TargetResult | undefined, value: (t: TargetResult) => string): string => {
  if (!t) return "-";
  if (t.status !== "ok") return t.status;
  return value(t);
};
const tpsCell = (t: TargetResult | undefined) => cell(t, (x) => Math.round(x.medianTps!).toString());
const latCell = (t: TargetResult | undefined) => cell(t, (x) => x.medianLatencyMs!.toFixed(3));
const ratioCell = (r: number | null) => (r === null ? "-" : r.toFixed(2));

/**
 * Failed transactions of one target over all rounds: pgbench's own count plus one per client it aborted on an error
 * (each lost the transaction it was in); "+ k failed runs" when k runs ended in an error, "+ k stalled runs" when k
 * were killed past -T (what they lost is unknown); "-" when the target did not run the point.
 */
export function failedText(t: TargetResult | undefined): string {
  if (!t || t.status === "unsupported" || t.status === "skipped") return "-";
  const n = t.failedTransactions + (t.abortedClients ?? 0);
  const stalled = t.stalledRuns ?? t.runs.filter((r) => r.killed).length;
  const failed = (t.failedRuns ?? t.runs.filter((r) => !r.ok).length) - stalled;
  const plural = (k: number, what: string) => (k ? ` + ${k} ${what} run${k > 1 ? "s" : ""}` : "");
  return `${n}${plural(failed, "failed")}${plural(stalled, "stalled")}`;
}

export const FAILED_HEADER = "failed pgbun/PgBouncer/direct";
export const FAILED_NOTE =
  'failed: transactions pgbench counted as failed plus clients it aborted on an error, summed over the rounds, for pgbun / PgBouncer / direct; "+ k failed runs": runs that ended in an error; "+ k stalled runs": runs killed after outliving -T by the grace, their losses unknown (see the notes).';

export function markdownTable(points: PointResult[]): string {
  const header = ["point", "pgbun TPS", "PgBouncer TPS", "direct TPS", "pgbun ms", "PgBouncer ms", "direct ms", FAILED_HEADER, "pgbun/PgBouncer", "pgbun/direct"];
  const body = rows(points).map((r) => [
    r.label,
    tpsCell(r.pgbun),
    tpsCell(r.pgbouncer),
    tpsCell(r.direct),
    latCell(r.pgbun),
    latCell(r.pgbouncer),
    latCell(r.direct),
    [r.pgbun, r.pgbouncer, r.direct].map(failedText).join(" / "),
    ratioCell(ratio(r.pgbun, r.pgbouncer)),
    ratioCell(ratio(r.pgbun, r.direct)),
  ]);
  return layout(header, body);
}

/** Lays out a Markdown table: the first column left-aligned, the rest right-aligned. */
export function layout(header: string[], body: string[][]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...body.map((row) => row[i]!.length)));
  const line = (cells: string[]) => `| ${cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join(" | ")} |`;
  const rule = `|${widths.map((w, i) => (i === 0 ? "-".repeat(w + 2) : `${"-".repeat(w + 1)}:`)).join("|")}|`;
  return [line(header), rule, ...body.map(line)].join("\n");
}

export const CPU_NOTE =
  "CPU time (user + system, all threads) the pooler process used during each run, divided by the transactions pgbench completed; median across rounds. pgbench's logins through the pooler are included, which weighs on the 1000-client points.";

/** The poolers' own CPU per transaction: steadier than TPS on a shared machine, since it does not depend on who else got the CPU. */
export function cpuTable(points: PointResult[]): string {
  const us = (t: TargetResult | undefined) => (t?.medianCpuUsPerXact != null ? t.medianCpuUsPerXact.toFixed(1) : t && t.status !== "ok" ? t.status : "-");
  const body = rows(points)
    .filter((r) => r.pgbun?.medianCpuUsPerXact != null)
    .map((r) => {
      const a = r.pgbun?.medianCpuUsPerXact;
      const b = r.pgbouncer?.medianCpuUsPerXact;
      return [r.label, us(r.pgbun), us(r.pgbouncer), a != null && b != null && b > 0 ? (a / b).toFixed(2) : "-"];
    });
  return layout(["point", "pgbun µs/xact", "PgBouncer µs/xact", "pgbun/PgBouncer CPU"], body);
}

/** Client-side TLS: each pooler with and without it (same process, same round), and pgbun's TLS beside PgBouncer's. */
export function tlsTable(points: PointResult[]): string {
  const header = ["point", "pgbun plain", "pgbun TLS", "pgbun TLS/plain", "PgBouncer plain", "PgBouncer TLS", "PgBouncer TLS/plain", "pgbun/PgBouncer, TLS", "failed pgbun/TLS, PgBouncer/TLS"];
  const body = points.map((p) => {
    const t = p.targets;
    return [
      p.name,
      tpsCell(t.pgbun),
      tpsCell(t["pgbun TLS"]),
      ratioCell(ratio(t["pgbun TLS"], t.pgbun)),
      tpsCell(t.PgBouncer),
      tpsCell(t["PgBouncer TLS"]),
      ratioCell(ratio(t["PgBouncer TLS"], t.PgBouncer)),
      ratioCell(ratio(t["pgbun TLS"], t["PgBouncer TLS"])),
      `${failedText(t.pgbun)}/${failedText(t["pgbun TLS"])}, ${failedText(t.PgBouncer)}/${failedText(t["PgBouncer TLS"])}`,
    ];
  });
  return layout(header, body);
}

/** The same points as pooler CPU per transaction (per login at -C), steadier than TPS on a shared machine. */
export function tlsCpuTable(points: PointResult[]): string {
  const us = (t: TargetResult | undefined) => (t?.medianCpuUsPerXact != null ? t.medianCpuUsPerXact.toFixed(1) : t ? t.status : "-");
  const header = ["point", "pgbun plain µs", "pgbun TLS µs", "PgBouncer plain µs", "PgBouncer TLS µs", "pgbun/PgBouncer CPU, TLS"];
  const body = points.map((p) => {
    const t = p.targets;
    const a = t["pgbun TLS"]?.medianCpuUsPerXact;
    const b = t["PgBouncer TLS"]?.medianCpuUsPerXact;
    return [p.name, us(t.pgbun), us(t["pgbun TLS"]), us(t.PgBouncer), us(t["PgBouncer TLS"]), a != null && b != null && b > 0 ? (a / b).toFixed(2) : "-"];
  });
  return layout(header, body);
}

export const TLS_NOTE =
  "Both poolers have client TLS on (client_tls_sslmode = prefer, one P-256 certificate) and plain text to PostgreSQL; pgbench connects to the same process with sslmode=require (TLS) or disable (plain). -C opens a connection (TLS handshake and login) per transaction, so there TPS is logins per second and CPU is per login.";

export function addedLatencyLines(list: AddedLatency[]): string[] {
  return list.map((a) => {
    const us = (x: number) => `${x >= 0 ? "+" : ""}${x.toFixed(0)} µs`;
    const bouncer = a.pgbouncerUs === null ? "PgBouncer unsupported" : `PgBouncer ${us(a.pgbouncerUs - a.directUs)}`;
    return `-S ${a.mode}, 1 client: direct ${a.directUs.toFixed(0)} µs per transaction; pgbun ${us(a.pgbunUs - a.directUs)}, ${bouncer}`;
  });
}

export function idleMemoryLines(list: IdleMemoryResult[]): string[] {
  return list.map((m) => {
    const mib = (k: number | null) => (k === null ? "?" : (k / 1024).toFixed(1));
    const per = m.bytesPerClient === null ? "not measured" : `${(m.bytesPerClient / 1024).toFixed(2)} KiB per idle client`;
    const problems = [m.failed ? `${m.failed} logins failed (${m.errors.join("; ")})` : "", m.lost ? `${m.lost} closed before the measurement` : ""].filter(Boolean).join(", ");
    return `${m.target}: ${per} (RSS ${mib(m.baselineKiB)} MiB -> ${mib(m.loadedKiB)} MiB with ${m.ready} of ${m.requested} clients, logins took ${(m.loginMs / 1000).toFixed(1)} s${problems ? `; ${problems}` : ""})`;
  });
}

/** "pgbench -T 3 per point (1000 clients: -T 6, their logins count against -T)". */
export function durationText(r: BenchResults): string {
  const long = r.points.find((p) => p.seconds !== r.options.seconds);
  return `pgbench -T ${r.options.seconds} per point${long ? ` (${long.clients} clients: -T ${long.seconds}, as their logins count against -T)` : ""}`;
}

export const RATIO_NOTE = "TPS and ms are medians across rounds; each ratio is the median of the per-round ratios of runs made back to back.";

/** One line per extra target measured in these points: which rows it makes and what it is. */
export function extraTargetLines(points: PointResult[]): string[] {
  const keys = new Set(points.flatMap((p) => Object.keys(p.targets)).map((k) => k.replace(/^pgbun-w\d+$/, "pgbun-wN")));
  return Object.entries(EXTRA_TARGETS)
    .filter(([k]) => keys.has(k))
    .map(([k, what]) => `${k}: ${what}; at ${points.filter((p) => Object.keys(p.targets).some((t) => t.replace(/^pgbun-w\d+$/, "pgbun-wN") === k)).map((p) => p.name).join(", ")}`);
}

export function textReport(r: BenchResults): string {
  const v = r.versions;
  const m = r.machine;
  return [
    `pgbun benchmark, ${r.startedAt}${r.options.quick ? " (--quick)" : ""}: ${r.options.rounds} round(s), ${durationText(r)}, medians across rounds`,
    `machine: ${m.nproc} cores (${m.cpu}), ${(m.memTotalMiB / 1024).toFixed(1)} GiB RAM, Linux ${m.kernel}`,
    `versions: Bun ${v.bun}, ${v.postgres}, ${v.pgbouncer}, ${v.pgbench}, pgbun ${v.pgbun}`,
    `setup: ${r.settings.poolMode} pooling, pool size ${r.settings.poolSize}, max_client_conn ${r.settings.maxClientConn}, ${r.settings.auth}; PostgreSQL max_connections ${r.settings.pgMaxConnections}, pgbench -i -s ${r.options.scale}`,
    "",
    markdownTable(r.points),
    RATIO_NOTE,
    FAILED_NOTE,
    ...extraTargetLines(r.points).map((l) => `  ${l}`),
    "",
    "Pooler CPU per transaction (lower is better):",
    cpuTable(r.points),
    CPU_NOTE,
    "",
    "Added latency per query (median latency through the pooler minus direct):",
    ...addedLatencyLines(r.addedLatency).map((l) => `  ${l}`),
    "",
    "Memory per idle client (RSS with N idle logged-in clients minus RSS with none, / N):",
    ...(r.idleMemory.length ? idleMemoryLines(r.idleMemory).map((l) => `  ${l}`) : ["  not measured"]),
    ...(r.tls?.length ? ["", "TLS on the client side (TPS):", tlsTable(r.tls), "", "TLS on the client side, pooler CPU per transaction:", tlsCpuTable(r.tls), TLS_NOTE] : []),
    ...(r.ha ? ["", "High availability (pg_gateway's comparison):", ...haLines(r.ha).map((l) => `  ${l}`)] : []),
    ...(r.notes.length ? ["", "Notes:", ...r.notes.map((n) => `  - ${n}`)] : []),
    "",
    `took ${Math.round(r.durationSeconds)} s`,
  ].join("\n");
}
