// The protocol fuzzer's loop: batches of inputs over parallel lanes, then a health check, a stranded-server check and an RSS sample.

import { compareWithPostgres, type Divergence } from "./fuzz-differential.ts";
import { makeInput, type FuzzInput } from "./fuzz-inputs.ts";
import { Probe } from "./probe.ts";
import { RssRecorder, rssKb, type RssSummary } from "./rss.ts";
import { APP, type Target } from "./target.ts";
import { sentinel, sentinelOf } from "./sentinel.ts";
import { concatBytes, GSSENC_REQUEST, hex, SSL_REQUEST } from "./wire.ts";
import { WireClient } from "./wire-client.ts";

export interface FuzzOptions {
  inputs: number;
  seed: number;
  /** The first input's id; with `inputs` it replays any range of a run. */
  firstId?: number;
  /** Connections sending inputs at once. */
  concurrency?: number;
  /** Inputs between two health checks. */
  batchSize?: number;
  /** Share of inputs sent after login; the rest go to fresh connections. */
  sessionShare?: number;
  /** How long a session waits for its sentinel's answer before it gives the connection up. */
  sentinelWaitMs?: number;
  checkTimeoutMs?: number;
  /** Stop starting batches after this long. */
  maxMs?: number;
  /** After a crash, replay its batch one input at a time to name the input that kills pgbun. */
  isolate?: boolean;
  /** Send only inputs whose kind starts with one of these ("huge-declared", "mutated", "valid:copy-in"); skip the rest. */
  only?: string[];
  /** Share of session inputs also sent on a fresh session straight to PostgreSQL, whose transcript pgbun's must match. */
  differentialShare?: number;
  /** pgbun's RSS past this (kB) is a finding, and pgbun is restarted before it takes the machine down; default 4 GB. */
  rssCeilingKb?: number;
  progress?: (s: FuzzSummary) => void;
}

export interface Finding {
  kind: "crash" | "hung" | "wrong" | "stranded" | "framing" | "foreign-reply" | "rss-ceiling";
  batch: number;
  /** The batch's inputs, [firstId, lastId]; replay them with --seed and --first-id. */
  ids: [number, number];
  detail: string;
  /** When isolated: the single input that does it. */
  input?: { id: number; kind: string; phase: string; hex: string };
}

export interface FuzzSummary {
  seed: number;
  inputsSent: number;
  elapsedMs: number;
  batches: number;
  crashes: number;
  hungChecks: number;
  wrongAnswers: number;
  strandedChecks: number;
  framingErrors: number;
  /** Answers meant for another connection (a sentinel naming another input) that arrived on a fuzz session. */
  foreignReplies: number;
  /** Times pgbun's RSS passed rssCeilingKb mid-batch (it was then killed and restarted). */
  rssCeilingHits: number;
  logins: number;
  pgbunRestarts: number;
  /** What became of each input: the session answered its sentinel, pgbun closed, or nothing came back in time. */
  outcomes: Record<Outcome, number>;
  kinds: Record<string, number>;
  findings: Finding[];
  /** Inputs whose transcript through pgbun differed from PostgreSQL's, by class, with up to 3 examples each. */
  divergences: { total: number; byClass: Record<string, number>; examples: Divergence[] };
  rss: RssSummary;
}

type Outcome = "answered" | "closedByPgbun" | "noAnswer" | "startupClosedByPgbun" | "startupLeftOpen" | "loginFailed" | "connectFailed";

/** What a lane counts as it goes. */
type LaneCounts = Pick<FuzzSummary, "outcomes" | "kinds" | "inputsSent" | "logins" | "divergences">;

function emptyCounts(): LaneCounts {
  const outcomes = { answered: 0, closedByPgbun: 0, noAnswer: 0, startupClosedByPgbun: 0, startupLeftOpen: 0, loginFailed: 0, connectFailed: 0 };
  return { outcomes, kinds: {}, inputsSent: 0, logins: 0, divergences: { total: 0, byClass: {}, examples: [] } };
}

/** The fuzz target's database: statement_timeout caps what a mutation turns into a long query; fuzz_copy takes COPY FROM STDIN. */
export const FUZZ_SETUP_SQL = "CREATE TABLE fuzz_copy (n int, t text); ALTER ROLE app SET statement_timeout = '1s';";

const MAX_FINDINGS = 50;
const STARTUP_WAIT_MS = 60;

export async function runFuzz(target: Target, o: FuzzOptions): Promise<FuzzSummary> {
  const started = Date.now();
  const first = o.firstId ?? 0;
  const batchSize = o.batchSize ?? 500;
  const rss = new RssRecorder();
  const probe = new Probe(target, o.checkTimeoutMs ?? 5000);
  const s: FuzzSummary = {
    seed: o.seed,
    elapsedMs: 0,
    batches: 0,
    crashes: 0,
    hungChecks: 0,
    wrongAnswers: 0,
    strandedChecks: 0,
    framingErrors: 0,
    foreignReplies: 0,
    rssCeilingHits: 0,
    pgbunRestarts: 0,
    ...emptyCounts(),
    findings: [],
    rss: rss.summary(),
  };
  const note = (f: Finding) => {
    if (s.findings.length < MAX_FINDINGS) s.findings.push(f);
  };
  rss.sample(target.pid, 0);
  try {
    for (let from = first; from < first + o.inputs; from += batchSize) {
      if (o.maxMs !== undefined && Date.now() - started > o.maxMs) break;
      const to = Math.min(from + batchSize, first + o.inputs);
      const batch = s.batches++;
      const ids: [number, number] = [from, to - 1];
      const lane = new Lane(target, o, s, (kind, detail, input) => {
        if (kind === "framing") s.framingErrors++;
        else s.foreignReplies++;
        note({ kind, batch, ids, detail, input: describe(input) });
      });
      let nextId = from;
      const guard = watchRss(target, o.rssCeilingKb ?? 4 << 20, (kb) => {
        s.rssCeilingHits++;
        note({ kind: "rss-ceiling", batch, ids, detail: `pgbun's RSS reached ${kb} kB; killed` });
      });
      await Promise.all(Array.from({ length: o.concurrency ?? 16 }, () => lane.run(() => (nextId < to ? nextId++ : undefined))));
      const overCeiling = guard.stop();

      let restart = false;
      if (overCeiling) await target.restart();
      else if (!target.alive()) {
        s.crashes++;
        const detail = `pgbun ${target.exitReason()}\n${target.outputTail()}`;
        await target.restart();
        note({ kind: "crash", batch, ids, detail, input: o.isolate ? await isolate(target, o, ids) : undefined });
      } else {
        const health = await probe.check();
        if (!health.ok) {
          if (health.kind === "hung") s.hungChecks++;
          else s.wrongAnswers++;
          note({ kind: health.kind, batch, ids, detail: health.detail });
          restart = true;
        }
        const stranded = await target.strandedServers();
        if (stranded !== null) {
          s.strandedChecks++;
          note({ kind: "stranded", batch, ids, detail: stranded });
          restart = true;
        }
        if (target.alive()) rss.sample(target.pid, s.inputsSent);
        if (restart) await target.restart();
      }
      s.elapsedMs = Date.now() - started;
      s.rss = rss.summary();
      s.pgbunRestarts = target.restarts;
      o.progress?.(s);
    }
  } finally {
    await probe.close();
  }
  s.elapsedMs = Date.now() - started;
  s.rss = rss.summary();
  s.pgbunRestarts = target.restarts;
  return s;
}

/** Samples pgbun's RSS five times a second during a batch and kills pgbun past the ceiling. */
function watchRss(target: Target, ceilingKb: number, over: (kb: number) => void): { stop(): boolean } {
  let hit = false;
  const timer = setInterval(() => {
    const kb = rssKb(target.pid);
    if (hit || kb === null || kb <= ceilingKb) return;
    hit = true;
    over(kb);
    target.pgbun.proc.kill("SIGKILL");
  }, 200);
  return {
    stop() {
      clearInterval(timer);
      return hit;
    },
  };
}

/** Sends inputs one after another on one connection at a time: a logged-in session is reused while it keeps answering. */
class Lane {
  constructor(
    private readonly target: Target,
    private readonly o: FuzzOptions,
    private readonly s: LaneCounts,
    private readonly report: (kind: "framing" | "foreign-reply", detail: string, input: FuzzInput) => void,
  ) {}

  async run(next: () => number | undefined): Promise<void> {
    let session: WireClient | null = null;
    for (let id = next(); id !== undefined; id = next()) {
      const input = makeInput(this.o.seed, id, this.o.sessionShare);
      const family = input.kind.split(":")[0]!;
      if (this.o.only !== undefined && !this.o.only.some((k) => input.kind.startsWith(k))) continue;
      this.s.kinds[family] = (this.s.kinds[family] ?? 0) + 1;
      this.s.inputsSent++;
      try {
        if (input.phase === "startup") await this.startup(input);
        else if (pickedForDifferential(id, this.o.differentialShare ?? 0)) await this.differential(input);
        else session = await this.session(input, session);
      } catch {
        // pgbun is gone (connection refused): the batch's check reports it.
        this.s.outcomes.connectFailed++;
        session = null;
      }
    }
    if (session !== null) leave(session, 0);
  }

  private async startup(input: FuzzInput): Promise<void> {
    const c = await WireClient.connect(this.target.port);
    c.expectSingleByteAnswers(leadingNegotiations(concatBytes(input.chunks)));
    await sendChunks(c, input);
    const r = await c.waitFor(() => false, STARTUP_WAIT_MS);
    if (c.framingError !== null) this.report("framing", c.framingError, input);
    if (r === "closed") this.s.outcomes.startupClosedByPgbun++;
    else {
      this.s.outcomes.startupLeftOpen++;
      leave(c, input.id);
    }
  }

  private async differential(input: FuzzInput): Promise<void> {
    const d = await compareWithPostgres(this.target, input, Math.max(this.o.sentinelWaitMs ?? 300, 500));
    if (d === null) return;
    if (d.foreign !== null) this.report("foreign-reply", `input ${input.id}'s session received the answer to input ${d.foreign}'s sentinel`, input);
    const v = this.s.divergences;
    v.total++;
    v.byClass[d.class] = (v.byClass[d.class] ?? 0) + 1;
    if (v.examples.filter((e) => e.class === d.class).length < 3) v.examples.push(d);
  }

  private async session(input: FuzzInput, reuse: WireClient | null): Promise<WireClient | null> {
    let c = reuse;
    if (c === null || c.closed) {
      c = await WireClient.connect(this.target.port);
      this.s.logins++;
      if (!(await c.login(APP.user, APP.db, APP.password))) {
        this.s.outcomes.loginFailed++;
        leave(c, input.id);
        return null;
      }
    }
    await sendChunks(c, input);
    // The sentinel: end whatever the input left open and prove the session still answers in order.
    c.send(sentinel(input));
    const r = await c.waitFor((m) => {
      const named = sentinelOf(m);
      if (named !== null && named !== input.id) this.report("foreign-reply", `input ${input.id}'s session received the answer to input ${named}'s sentinel`, input);
      return named === input.id;
    }, this.o.sentinelWaitMs ?? 300);
    if (c.framingError !== null) this.report("framing", c.framingError, input);
    if (r === "matched") {
      this.s.outcomes.answered++;
      return c;
    }
    if (r === "closed") this.s.outcomes.closedByPgbun++;
    else {
      this.s.outcomes.noAnswer++;
      leave(c, input.id);
    }
    return null;
  }
}

/** Whether input `id` also goes straight to PostgreSQL: a hash of the id, so a replay picks the same inputs. */
function pickedForDifferential(id: number, share: number): boolean {
  return share > 0 && (Math.imul(id + 1, 0x85ebca6b) >>> 0) / 2 ** 32 < share;
}

/** How many SSLRequest and GSSENCRequest packets open the bytes: each gets a one-byte answer. */
function leadingNegotiations(bytes: Uint8Array): number {
  const v = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let n = 0;
  while ((n + 1) * 8 <= bytes.length && v.getInt32(n * 8) === 8 && [SSL_REQUEST, GSSENC_REQUEST].includes(v.getInt32(n * 8 + 4))) n++;
  return n;
}

/** Chunks go out a tick or a millisecond apart, so pgbun reads messages split at every point. */
async function sendChunks(c: WireClient, input: FuzzInput): Promise<void> {
  for (const [i, chunk] of input.chunks.entries()) {
    if (i > 0) await Bun.sleep(input.id % 2);
    c.send(chunk);
  }
}

/** Leaves a connection in one of three ways, chosen by id: Terminate and FIN, FIN alone, or RST. */
function leave(c: WireClient, id: number): void {
  if (c.closed) return;
  const how = id % 3;
  if (how === 0) c.end();
  else if (how === 1) c.hangUp();
  else c.reset();
}

/** Replays a batch one input at a time on a fresh pgbun until one kills it. */
async function isolate(target: Target, o: FuzzOptions, [from, to]: [number, number]): Promise<Finding["input"]> {
  for (let id = from; id <= to; id++) {
    const lane = new Lane(target, o, emptyCounts(), () => {});
    let once = false;
    await lane.run(() => (once ? undefined : ((once = true), id)));
    await Bun.sleep(50);
    if (!target.alive()) {
      await target.restart();
      return describe(makeInput(o.seed, id, o.sessionShare));
    }
  }
  return undefined;
}

function describe(input: FuzzInput): NonNullable<Finding["input"]> {
  return { id: input.id, kind: input.kind, phase: input.phase, hex: hex(concatBytes(input.chunks), 512) };
}
