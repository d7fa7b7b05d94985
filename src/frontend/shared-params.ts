// Session parameters as most clients have them: one Map, its key and the login's ParameterStatus messages, shared by
// every client of a pool that logged in with the same ones (most of them), instead of a copy per client.

import { parameterStatus } from "../protocol/messages.ts";

export interface SharedParams {
  /** Never changed: a client copies it before its first change of its own. */
  readonly wanted: Map<string, string>;
  /** paramsKeyOf(wanted). */
  readonly key: string;
  /** The ParameterStatus messages a client with these parameters is shown at login, as one buffer. */
  readonly status: Uint8Array;
}

/** Beyond this many distinct sets per pool (application_name set per client, say) the table starts afresh. */
const MAX_SETS = 1000;

/** Per welcome map (one per pool, replaced when the pool learns its server's parameters again). */
const byWelcome = new WeakMap<Map<string, string>, Map<string, SharedParams>>();

/** "name=value\0" for each parameter in order: equal keys mean a server needs no SET to serve either client. */
export function paramsKeyOf(wanted: ReadonlyMap<string, string>): string {
  let k = "";
  for (const [name, value] of wanted) k += name + "=" + value + "\u0000";
  return k;
}

/** The shared copy of `wanted` for clients welcomed with `welcome`. */
export function shareParams(welcome: Map<string, string>, wanted: Map<string, string>): SharedParams {
  let table = byWelcome.get(welcome);
  if (table === undefined) byWelcome.set(welcome, (table = new Map()));
  const key = paramsKeyOf(wanted);
  let shared = table.get(key);
  if (shared === undefined) {
    if (table.size >= MAX_SETS) table.clear();
    const parts: Uint8Array[] = [];
    for (const [name, value] of welcome) parts.push(parameterStatus(name, wanted.get(name) ?? value));
    const status = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
    let at = 0;
    for (const p of parts) {
      status.set(p, at);
      at += p.length;
    }
    shared = { wanted, key, status };
    table.set(key, shared);
  }
  return shared;
}
