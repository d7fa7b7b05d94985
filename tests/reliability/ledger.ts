// The lost-write ledger: writers record every commit pgbun acknowledged while backends die; the table must agree.

import postgres from "postgres";
import { TimeoutError, within } from "./deadline.ts";
import { Rng } from "./random.ts";
import { APP, type Target } from "./target.ts";
import { encode, fe } from "./wire.ts";
import { WireClient } from "./wire-client.ts";

export const LEDGER_SETUP_SQL = "CREATE TABLE ledger (id bigint PRIMARY KEY, client int NOT NULL, how text NOT NULL);";

export interface LedgerOptions {
  writers: number;
  durationMs: number;
  seed?: number;
  /** Each writer stops after this many writes even if time is left. */
  maxWritesPerWriter?: number;
  /** pg_terminate_backend on a random pgbun server this often; 0: never. Default 200. */
  killEveryMs?: number;
  /** With a fault proxy: reset a server connection (or arm a reset on the next COMMIT) this often; 0: never. */
  proxyFaultEveryMs?: number;
  /**
   * One writer in this many uses postgres.js (sql.begin, prepared statements); 0 (the default): none. postgres.js on
   * Bun sometimes throws an uncaught TypeError from a socket it already dropped when its connection is killed (directly
   * against PostgreSQL too), which fails a bun test: use it from a script that tolerates that (tolerateDriverBug).
   */
  driverEvery?: number;
  /** A write with no answer for this long counts as hung. */
  opTimeoutMs?: number;
}

export interface LedgerSummary {
  writers: number;
  elapsedMs: number;
  attempted: number;
  /** pgbun said COMMIT succeeded. */
  acknowledged: number;
  /** Known not committed: COMMIT never sent, or PostgreSQL's own error or ROLLBACK said so. */
  failed: number;
  /** Error or lost connection after COMMIT was sent: either outcome is allowed. */
  unknown: { total: number; present: number; absent: number };
  /** Acknowledged but not in the table. */
  lost: number[];
  /** In the table but never attempted. */
  phantom: number[];
  /** Known not committed, yet in the table (another client's COMMIT finished it, say). */
  failedButPresent: number[];
  /** Writes that got no answer and no close within opTimeoutMs. */
  hung: number;
  kills: number;
  proxyFaults: number;
  /** Errors seen, by SQLSTATE (or "closed"/"timeout"). */
  errors: Record<string, number>;
  /** The write that took longest, from its first byte to its outcome. */
  slowest: { ms: number; id: number; how: string };
}

type Outcome = "ack" | "failed" | "unknown" | "hung";

/** Every id a writer tried, by what it was told. */
class Book {
  readonly outcome = new Map<number, Outcome>();
  readonly errors: Record<string, number> = {};
  slowest = { ms: 0, id: 0, how: "" };
  private started = new Map<number, number>();
  attempt(id: number): void {
    this.outcome.set(id, "unknown");
    this.started.set(id, Date.now());
  }
  settle(id: number, o: Outcome, why?: string): void {
    this.outcome.set(id, o);
    if (why !== undefined) this.errors[why] = (this.errors[why] ?? 0) + 1;
    const ms = Date.now() - (this.started.get(id) ?? Date.now());
    this.started.delete(id);
    if (ms > this.slowest.ms) this.slowest = { ms, id, how: `${o}${why === undefined ? "" : ` (${why})`}` };
  }
}

export async function runLedger(target: Target, o: LedgerOptions): Promise<LedgerSummary> {
  const started = Date.now();
  const stopAt = started + o.durationMs;
  const rng = new Rng(o.seed ?? 7);
  const book = new Book();
  const chaos = { kills: 0, proxyFaults: 0, stop: false };
  const killer = o.killEveryMs === 0 ? Promise.resolve() : killBackends(target, o.killEveryMs ?? 200, chaos);
  const faults = target.proxy && o.proxyFaultEveryMs ? proxyFaults(target, o.proxyFaultEveryMs, rng.fork(), chaos) : Promise.resolve();
  const every = o.driverEvery ?? 0;
  const writers = Array.from({ length: o.writers }, (_, i) => {
    const w = { id: i + 1, book, stopAt, max: o.maxWritesPerWriter ?? 1_000_000, timeoutMs: o.opTimeoutMs ?? 10_000 };
    return every > 0 && i % every === every - 1 ? driverWriter(target, w) : rawWriter(target, w, rng.fork());
  });
  await Promise.all(writers);
  chaos.stop = true;
  await Promise.all([killer, faults]);
  return verify(target, book, o.writers, Date.now() - started, chaos);
}

interface Writer {
  id: number;
  book: Book;
  stopAt: number;
  max: number;
  timeoutMs: number;
}

/** SQLSTATE classes that say the connection or server went away: the write may or may not have committed. */
const AMBIGUOUS = /^E:(ERROR|FATAL|PANIC):(08|57|XX)/;

/**
 * What PostgreSQL's replies say about a transaction that includes COMMIT: COMMIT's own tag, or an ordinary
 * ERROR followed by ReadyForQuery (the server saw it fail), or nothing certain.
 */
function judge(replies: string[]): Outcome {
  if (replies.includes("C:COMMIT")) return "ack";
  if (replies.includes("C:ROLLBACK")) return "failed";
  const err = replies.findIndex((r) => r.startsWith("E:"));
  if (err >= 0 && !AMBIGUOUS.test(replies[err]!) && replies.slice(err).some((r) => r.startsWith("Z:"))) return "failed";
  return "unknown";
}

const why = (replies: string[], result: string) => replies.find((r) => r.startsWith("E:"))?.slice(2) ?? result;

async function rawWriter(target: Target, w: Writer, rng: Rng): Promise<void> {
  let c: WireClient | null = null;
  let prepared = false;
  for (let seq = 1; seq <= w.max && Date.now() < w.stopAt; seq++) {
    if (c === null || c.closed) {
      prepared = false;
      c = await WireClient.connect(target.port).catch(() => null);
      if (c === null || !(await c.login(APP.user, APP.db, APP.password))) {
        c?.reset();
        c = null;
        await Bun.sleep(20);
        continue;
      }
    }
    const id = w.id * 10_000_000 + seq;
    w.book.attempt(id);
    const row = `(${id}, ${w.id}, `;
    let outcome: Outcome;
    let replies: string[] = [];
    let result = "matched";
    switch (rng.int(4)) {
      case 0: {
        ({ replies, result } = await c.request(encode([fe.query(`BEGIN; INSERT INTO ledger VALUES ${row}'one-shot'); COMMIT`)]), 1, w.timeoutMs));
        outcome = judge(replies);
        break;
      }
      case 1: {
        // Three round trips; the transaction is open on a pooled server in between, and sometimes abandoned there.
        const step = async (sql: string, want: string) => {
          ({ replies, result } = await c!.request(encode([fe.query(sql)]), 1, w.timeoutMs));
          return replies.includes(want) && replies.at(-1) === "Z:T";
        };
        if (!(await step("BEGIN", "C:BEGIN")) || !(await step(`INSERT INTO ledger VALUES ${row}'round-trips')`, "C:INSERT 0 1"))) outcome = "failed";
        else if (rng.chance(0.05)) {
          if (rng.chance(0.5)) c.reset();
          else c.hangUp();
          c = null;
          outcome = "failed";
          result = "abandoned";
        } else {
          ({ replies, result } = await c.request(encode([fe.query("COMMIT")]), 1, w.timeoutMs));
          outcome = judge(replies);
        }
        break;
      }
      case 2: {
        // Autocommit through the extended protocol: INSERT's CommandComplete comes before the commit at Sync.
        const frames = [fe.parse("", "INSERT INTO ledger VALUES ($1, $2, 'extended')"), fe.bind("", "", [String(id), String(w.id)]), fe.execute(), fe.sync()];
        ({ replies, result } = await c.request(encode(frames), 1, w.timeoutMs));
        const i = replies.indexOf("C:INSERT 0 1");
        outcome = i >= 0 && replies[i + 1] === "Z:I" ? "ack" : judge(replies);
        break;
      }
      default: {
        // One pipeline, BEGIN to COMMIT, with a named statement prepared once per connection (postgres.js's shape).
        const frames = [fe.parse("", "BEGIN"), fe.bind("", ""), fe.execute()];
        if (!prepared) frames.push(fe.parse("ledger_ins", "INSERT INTO ledger VALUES ($1, $2, 'pipeline')"));
        frames.push(fe.bind("", "ledger_ins", [String(id), String(w.id)]), fe.execute(), fe.parse("", "COMMIT"), fe.bind("", ""), fe.execute(), fe.sync());
        ({ replies, result } = await c.request(encode(frames), 1, w.timeoutMs));
        prepared = true;
        outcome = judge(replies);
      }
    }
    if (result === "timeout") outcome = "hung";
    w.book.settle(id, outcome, outcome === "ack" ? undefined : why(replies, result));
    if (outcome !== "ack" && c !== null) {
      c.reset();
      c = null;
    }
  }
  c?.end();
}

/** postgres.js in a transaction block with prepared statements: a rejection cannot say whether COMMIT happened. */
async function driverWriter(target: Target, w: Writer): Promise<void> {
  // Its default backoff grows to 20 s after repeated kills, which would read as a hang here.
  const backoff = () => 0.05 + Math.random() * 0.2;
  const open = () => postgres(target.url(), { max: 1, onnotice: () => {}, connect_timeout: 3, idle_timeout: 0, max_lifetime: null, backoff });
  let sql = open();
  try {
    for (let seq = 1; seq <= w.max && Date.now() < w.stopAt; seq++) {
      const id = w.id * 10_000_000 + seq;
      w.book.attempt(id);
      try {
        await within(w.timeoutMs, sql.begin((tx) => tx`INSERT INTO ledger VALUES (${id}, ${w.id}, 'postgres.js')`));
        w.book.settle(id, "ack");
      } catch (err) {
        const e = err as { code?: string; message?: string };
        if (err instanceof TimeoutError) w.book.settle(id, "hung", "timeout");
        else w.book.settle(id, "unknown", e.code ?? "driver");
        // A killed connection can leave the postgres.js instance unable to connect again: start afresh.
        void sql.end({ timeout: 0 }).catch(() => {});
        sql = open();
      }
    }
  } finally {
    await sql.end({ timeout: 1 }).catch(() => {});
  }
}

async function killBackends(target: Target, everyMs: number, chaos: { kills: number; stop: boolean }): Promise<void> {
  for (;;) {
    await Bun.sleep(everyMs);
    if (chaos.stop) return;
    const rows = await target.admin`
      SELECT pg_terminate_backend(pid) AS ok FROM pg_stat_activity
      WHERE usename = ${APP.user} AND backend_type = 'client backend' ORDER BY random() LIMIT 1`.catch(() => []);
    if (rows[0]?.ok === true) chaos.kills++;
  }
}

/** Resets between pgbun and PostgreSQL: a random server connection, or the one whose COMMIT (or its reply) passes next. */
async function proxyFaults(target: Target, everyMs: number, rng: Rng, chaos: { proxyFaults: number; stop: boolean }): Promise<void> {
  const proxy = target.proxy!;
  for (;;) {
    await Bun.sleep(everyMs);
    if (chaos.stop) return proxy.clearTriggers();
    const reset = () => chaos.proxyFaults++;
    switch (rng.int(3)) {
      case 0: {
        const open = proxy.connections();
        if (open.length > 0) {
          rng.pick(open).reset();
          reset();
        }
        break;
      }
      case 1:
        proxy.when({ direction: "up", contains: "COMMIT", before: true }, (c) => (c.reset(), reset()));
        break;
      default:
        proxy.when({ direction: "down", contains: "COMMIT\0", before: true }, (c) => (c.reset(), reset()));
    }
  }
}

async function verify(target: Target, book: Book, writers: number, elapsedMs: number, chaos: { kills: number; proxyFaults: number }): Promise<LedgerSummary> {
  const rows = await target.admin<Array<{ id: string }>>`SELECT id FROM ledger`;
  const present = new Set(rows.map((r) => Number(r.id)));
  const s: LedgerSummary = {
    writers,
    elapsedMs,
    attempted: book.outcome.size,
    acknowledged: 0,
    failed: 0,
    unknown: { total: 0, present: 0, absent: 0 },
    lost: [],
    phantom: [...present].filter((id) => !book.outcome.has(id)),
    failedButPresent: [],
    hung: 0,
    kills: chaos.kills,
    proxyFaults: chaos.proxyFaults,
    errors: book.errors,
    slowest: book.slowest,
  };
  for (const [id, o] of book.outcome) {
    if (o === "ack") {
      s.acknowledged++;
      if (!present.has(id)) s.lost.push(id);
    } else if (o === "failed") {
      s.failed++;
      if (present.has(id)) s.failedButPresent.push(id);
    } else {
      if (o === "hung") s.hung++;
      s.unknown.total++;
      if (present.has(id)) s.unknown.present++;
      else s.unknown.absent++;
    }
  }
  return s;
}
