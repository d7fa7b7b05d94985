// The soak's clients: postgres.js and raw-protocol workers with checked answers, slow readers and clients that vanish.

import { createHash } from "node:crypto";
import postgres from "postgres";
import { TimeoutError, within } from "./deadline.ts";
import type { Rng } from "./random.ts";
import { APP, type Target } from "./target.ts";
import { encode, fe, type Frame } from "./wire.ts";
import { cell, WireClient } from "./wire-client.ts";

export const SOAK_SETUP_SQL =
  "CREATE TABLE soak_accounts (id int PRIMARY KEY, balance bigint NOT NULL DEFAULT 0); INSERT INTO soak_accounts (id) SELECT generate_series(1, 1000);";

/** Errors that killing backends and dropping connections explain; anything else is a finding. */
const EXPECTED = new Set([
  ...["57P01", "08006", "08003"],
  ...["CONNECTION_CLOSED", "CONNECTION_DESTROYED", "CONNECTION_ENDED", "CONNECT_TIMEOUT", "ECONNRESET", "EPIPE", "closed"],
]);

export class Tally {
  transactions = 0;
  wrongAnswers = 0;
  hung = 0;
  disconnects = 0;
  slowReads = 0;
  readonly errors: Record<string, number> = {};
  readonly examples: string[] = [];

  error(code: string, detail = ""): void {
    this.errors[code] = (this.errors[code] ?? 0) + 1;
    if (!EXPECTED.has(code)) this.example(`error ${code}: ${detail}`);
  }

  wrong(detail: string): void {
    this.wrongAnswers++;
    this.example(`wrong answer: ${detail}`);
  }

  get unexpectedErrors(): number {
    return Object.entries(this.errors).reduce((n, [code, k]) => n + (EXPECTED.has(code) ? 0 : k), 0);
  }

  private example(text: string): void {
    if (this.examples.length < 20) this.examples.push(text);
  }
}

export interface ClientPlan {
  target: Target;
  tally: Tally;
  stopAt: number;
  maxOps: number;
  thinkMs: [number, number];
  opTimeoutMs: number;
}

/** Runs `op` within the deadline and files its outcome; false when the connection should be replaced. */
async function attempt(p: ClientPlan, op: () => Promise<string | null>): Promise<boolean> {
  try {
    const wrong = await within(p.opTimeoutMs, op());
    if (wrong === null) p.tally.transactions++;
    else p.tally.wrong(wrong);
    return true;
  } catch (err) {
    if (err instanceof TimeoutError) p.tally.hung++;
    else {
      const e = err as { code?: string; message?: string };
      p.tally.error(e.code ?? "driver", e.message ?? "");
    }
    return false;
  }
}

const md5 = (s: string) => createHash("md5").update(s).digest("hex");

/** postgres.js, one connection, prepared statements on or off; every answer is checked. */
export async function driverClient(p: ClientPlan, rng: Rng, prepare: boolean): Promise<void> {
  const open = () =>
    postgres(p.target.url(), {
      max: 1,
      prepare,
      onnotice: () => {},
      connect_timeout: 3,
      idle_timeout: 0,
      max_lifetime: null,
      // Its default backoff grows to 20 s after repeated kills; a soak wants the client back.
      backoff: () => 0.05 + rng.next() * 0.2,
    });
  let sql = open();
  try {
    for (let i = 0; i < p.maxOps && Date.now() < p.stopAt; i++) {
      await Bun.sleep(rng.range(...p.thinkMs));
      const n = rng.int(1_000_000);
      const ok = await attempt(p, async () => {
        switch (rng.int(5)) {
          case 0: {
            const [r] = await sql`SELECT ${n}::int + 1 AS v`;
            return r?.v === n + 1 ? null : `SELECT ${n} + 1 gave ${r?.v}`;
          }
          case 1: {
            const id = 1 + (n % 1000);
            const got = await sql.begin(async (tx) => {
              await tx`UPDATE soak_accounts SET balance = balance + 1 WHERE id = ${id}`;
              return (await tx`SELECT id FROM soak_accounts WHERE id = ${id}`)[0]?.id;
            });
            return got === id ? null : `account ${id} read back as ${got}`;
          }
          case 2: {
            const [r] = await sql`SELECT md5(${String(n)}) AS h, ${n}::int AS n`;
            return r?.h === md5(String(n)) && r.n === n ? null : `md5(${n}) gave ${r?.h} for ${r?.n}`;
          }
          case 3: {
            const m = 1 + (n % 200);
            const rows = await sql`SELECT g FROM generate_series(1, ${m}::int) g`;
            return rows.length === m && rows[m - 1]?.g === m ? null : `generate_series(1, ${m}) gave ${rows.length} rows`;
          }
          default:
            await sql`SELECT pg_sleep(${(n % 5) / 100})`;
            return null;
        }
      });
      if (!ok) {
        // A postgres.js instance whose connection was killed at a bad moment may never connect again (driver-guard.ts):
        // start afresh, as an application would.
        void sql.end({ timeout: 0 }).catch(() => {});
        sql = open();
      }
    }
  } finally {
    await sql.end({ timeout: 1 }).catch(() => {});
  }
}

/** The raw protocol: a named statement prepared once per connection, pipelines of three Syncs, simple transactions. */
export async function rawClient(p: ClientPlan, rng: Rng, index: number): Promise<void> {
  let c: WireClient | null = null;
  let prepared = false;
  for (let i = 0; i < p.maxOps && Date.now() < p.stopAt; i++) {
    await Bun.sleep(rng.range(...p.thinkMs));
    if (c === null || c.closed) {
      c = await login(p);
      prepared = false;
      if (c === null) continue;
    }
    const conn = c;
    const n = rng.int(100_000);
    const ok = await attempt(p, async () => {
      const values: Array<string | null> = [];
      const named = rng.chance(0.5);
      let frames: Frame[];
      let expected: string[];
      if (named) {
        const stmt = `soak_${index}`;
        frames = prepared ? [] : [fe.parse(stmt, "SELECT $1::int * 3")];
        for (let k = 0; k < 3; k++) frames.push(fe.bind("", stmt, [String(n + k)]), fe.execute(), fe.sync());
        expected = [0, 1, 2].map((k) => String((n + k) * 3));
      } else {
        frames = [fe.query(`BEGIN; SELECT ${n}; COMMIT`)];
        expected = [String(n)];
      }
      const { result } = await conn.request(encode(frames), expected.length, p.opTimeoutMs, (r) => r.tag === "D" && values.push(cell(r)));
      if (result !== "matched") throw Object.assign(new Error(conn.lastError?.message ?? result), { code: conn.lastError?.code ?? result });
      if (conn.lastError !== null) throw Object.assign(new Error(conn.lastError.message), { code: conn.lastError.code });
      prepared ||= named;
      return values.join(",") === expected.join(",") ? null : `expected ${expected.join(",")}, got ${values.join(",")}`;
    });
    if (!ok) {
      c.reset();
      c = null;
    }
  }
  c?.end();
}

/** Asks for a 2 MB result, stops reading for 1 to 3 s, then reads it all and counts the rows. */
export async function slowReader(p: ClientPlan, rng: Rng): Promise<void> {
  for (let i = 0; i < p.maxOps && Date.now() < p.stopAt; i++) {
    await Bun.sleep(rng.range(...p.thinkMs));
    const c = await login(p);
    if (c === null) continue;
    await attempt(p, async () => {
      let rows = 0;
      c.pauseReading(true);
      const big = encode([fe.query("SELECT g, repeat('x', 100) FROM generate_series(1, 20000) g")]);
      const done = c.request(big, 1, p.opTimeoutMs, (r) => r.tag === "D" && rows++);
      await Bun.sleep(rng.range(1000, 3000));
      c.pauseReading(false);
      const { result } = await done;
      if (result !== "matched" || c.lastError !== null) throw Object.assign(new Error(result), { code: c.lastError?.code ?? result });
      p.tally.slowReads++;
      return rows === 20000 ? null : `a slow reader got ${rows} of 20000 rows`;
    });
    c.end();
  }
}

/** Opens a transaction (and sometimes a query) and vanishes: RST or FIN, mid-query or idle in the transaction. */
export async function vanishingClient(p: ClientPlan, rng: Rng): Promise<void> {
  for (let i = 0; i < p.maxOps && Date.now() < p.stopAt; i++) {
    await Bun.sleep(rng.range(...p.thinkMs) * 3);
    const c = await login(p);
    if (c === null) continue;
    if (rng.chance(0.5)) c.send(encode([fe.query("BEGIN; SELECT pg_sleep(0.2)")]));
    else await c.request(encode([fe.query("BEGIN; UPDATE soak_accounts SET balance = balance WHERE id = 1")]), 1, p.opTimeoutMs);
    await Bun.sleep(rng.int(50));
    if (rng.chance(0.5)) c.reset();
    else c.hangUp();
    p.tally.disconnects++;
  }
}

async function login(p: ClientPlan): Promise<WireClient | null> {
  const c = await WireClient.connect(p.target.port).catch(() => null);
  if (c !== null && (await c.login(APP.user, APP.db, APP.password, p.opTimeoutMs))) return c;
  p.tally.error(c?.lastError?.code ?? "login", c?.lastError?.message ?? "no connection");
  c?.reset();
  await Bun.sleep(50);
  return null;
}
