// The fuzzer's second oracle: the same input on a fresh session straight to PostgreSQL and through pgbun must read the same.

import type { FuzzInput } from "./fuzz-inputs.ts";
import { APP, type Target } from "./target.ts";
import { sentinel, sentinelOf } from "./sentinel.ts";
import { concatBytes, hex } from "./wire.ts";
import { commandTag, errorOf, type Reply, WireClient } from "./wire-client.ts";

export interface Divergence {
  /** The first place the two transcripts differ, hashes left out, so that alike divergences group together. */
  class: string;
  id: number;
  kind: string;
  direct: string[];
  pgbun: string[];
  hex: string;
  /** Through pgbun, the input whose sentinel answer arrived on this session instead of its own, if any. */
  foreign: number | null;
}

// What may differ without a client noticing: ParameterStatus (pgbun reports its own set), notices, notifications.
const IGNORED = new Set(["S", "N", "A", "K"]);

/** One reply as a short, comparable string: its tag and what identifies it (SQLSTATE, command tag, a hash of data). */
function normalize(r: Reply): string {
  switch (r.tag) {
    case "E": {
      const e = errorOf(r);
      return `E:${e.severity}:${e.code}:${e.message}`;
    }
    case "C":
      return `C:${commandTag(r)}`;
    case "Z":
      return `Z:${String.fromCharCode(r.body[0] ?? 0)}`;
    case "D":
    case "T":
    case "d":
      return `${r.tag}:${Bun.hash(r.body).toString(36)}`;
    default:
      return r.tag;
  }
}

interface Transcript {
  replies: string[];
  foreign: number | null;
}

/** Sends the input and the sentinel; returns the transcript up to the sentinel's ReadyForQuery, or to the close. */
async function transcript(port: number, input: FuzzInput, waitMs: number): Promise<Transcript | null> {
  const c = await WireClient.connect(port);
  try {
    if (!(await c.login(APP.user, APP.db, APP.password))) return null;
    const t: Transcript = { replies: [], foreign: null };
    let seen = false;
    const done = c.waitFor((r) => {
      if (!IGNORED.has(r.tag)) t.replies.push(normalize(r));
      const named = sentinelOf(r);
      if (named === input.id) seen = true;
      else if (named !== null) t.foreign ??= named;
      return seen && r.tag === "Z";
    }, waitMs);
    for (const [i, chunk] of input.chunks.entries()) {
      if (i > 0) await Bun.sleep(input.id % 2);
      c.send(chunk);
    }
    c.send(sentinel(input));
    const r = await done;
    if (r !== "matched") t.replies.push(r);
    return t;
  } finally {
    c.reset();
  }
}

/** Replies compare on their tag and identity; an error's message text may differ (pgbun words its own). */
const comparable = (s: string) => s.replace(/^(E:\w+:\w+):[\s\S]*/, "$1");

/** Runs the input both ways; null when the transcripts agree (or a login failed, which the health check reports). */
export async function compareWithPostgres(target: Target, input: FuzzInput, waitMs: number): Promise<Divergence | null> {
  const [d, p] = await Promise.all([transcript(target.pg.port, input, waitMs), transcript(target.port, input, waitMs)]);
  if (d === null || p === null) return null;
  const direct = d.replies.map(comparable);
  const pgbun = p.replies.map(comparable);
  if (direct.length === pgbun.length && direct.every((x, i) => x === pgbun[i])) return null;
  let at = 0;
  while (direct[at] === pgbun[at]) at++;
  const bare = (s: string | undefined) => (s === undefined ? "end" : s.replace(/^([DTd]):.*/, "$1"));
  return {
    class: `${bare(direct[at])} vs ${bare(pgbun[at])}`,
    id: input.id,
    kind: input.kind,
    direct: d.replies,
    pgbun: p.replies,
    hex: hex(concatBytes(input.chunks), 512),
    foreign: p.foreign,
  };
}
