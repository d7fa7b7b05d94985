// The well-behaved client: after each round of abuse it asks pgbun questions with known answers, within a deadline.

import postgres from "postgres";
import { TimeoutError, within } from "./deadline.ts";
import type { Target } from "./target.ts";
import { APP } from "./target.ts";
import { cell, commandTag, WireClient } from "./wire-client.ts";
import { encode, fe } from "./wire.ts";

export type ProbeResult = { ok: true } | { ok: false; kind: "hung" | "wrong"; detail: string };

// On a server handed over with someone else's transaction still open, now() is that transaction's start. A simple
// Query starts its transaction and its statement at the same instant; the extended protocol stamps Parse, Bind and
// Execute apart, so the driver's check allows a second.
const FRESH_SIMPLE = "now() = statement_timestamp()";
const FRESH_EXTENDED = "clock_timestamp() - now() < interval '1 second'";

export class Probe {
  private sql: postgres.Sql | null = null;
  private port = 0;
  private n = 0;

  constructor(
    private readonly target: Target,
    private readonly timeoutMs = 5000,
  ) {}

  /** A pooled postgres.js client (kept across probes, prepared statements on) and a fresh raw login, both checked. */
  async check(): Promise<ProbeResult> {
    const n = ++this.n * 7;
    try {
      const driver = await within(this.timeoutMs, this.viaDriver(n));
      const raw = await within(this.timeoutMs, this.viaRawLogin(n));
      const wrong = [driver && `postgres.js: ${driver}`, raw && `raw client: ${raw}`].filter(Boolean).join("; ");
      return wrong === "" ? { ok: true } : { ok: false, kind: "wrong", detail: wrong };
    } catch (err) {
      if (err instanceof TimeoutError) return { ok: false, kind: "hung", detail: err.message };
      return { ok: false, kind: "wrong", detail: `error: ${(err as Error).message}` };
    }
  }

  async close(): Promise<void> {
    await this.sql?.end({ timeout: 1 }).catch(() => {});
    this.sql = null;
  }

  private async viaDriver(n: number): Promise<string | null> {
    if (this.sql === null || this.port !== this.target.port) {
      await this.close();
      this.port = this.target.port;
      this.sql = postgres(this.target.url(), { max: 1, onnotice: () => {}, connect_timeout: 5, idle_timeout: 0 });
    }
    const fresh = this.sql.unsafe(FRESH_EXTENDED);
    const rows = await this.sql<Array<{ v: number; fresh: boolean; s: string }>>`SELECT ${n}::int + 1 AS v, ${fresh} AS fresh, ${"probe-" + n}::text AS s`;
    const r = rows[0];
    if (rows.length !== 1 || r?.v !== n + 1 || r.s !== `probe-${n}`) return `expected ${n + 1} and probe-${n}, got ${JSON.stringify(rows)}`;
    if (!r.fresh) return "a transaction was already open on the server it got";
    return null;
  }

  private async viaRawLogin(n: number): Promise<string | null> {
    const c = await WireClient.connect(this.target.port);
    try {
      if (!(await c.login(APP.user, APP.db, APP.password))) return `login failed: ${c.lastError?.code ?? "no answer"} ${c.lastError?.message ?? ""}`;
      const seen: string[] = [];
      let value: string | null = null;
      let fresh: string | null = null;
      c.send(encode([fe.query(`SELECT ${n} * 2, ${FRESH_SIMPLE}`)]));
      const r = await c.untilReady(this.timeoutMs, (m) => {
        seen.push(m.tag === "C" ? `C:${commandTag(m)}` : m.tag);
        if (m.tag === "D") [value, fresh] = [cell(m, 0), cell(m, 1)];
      });
      if (r === "timeout") throw new TimeoutError("a fresh client's query got no ReadyForQuery");
      if (r === "closed") return `closed after ${seen.join(",")} (${c.lastError?.code ?? ""} ${c.lastError?.message ?? ""})`;
      if (seen.join(",") !== "T,D,C:SELECT 1,Z" || value !== String(n * 2)) {
        return `expected T,D,C:SELECT 1,Z with ${n * 2}, got ${seen.join(",")} with ${value}`;
      }
      if (fresh !== "t") return "a transaction was already open on the server it got";
      return null;
    } finally {
      c.end();
    }
  }
}
