// What a client's SQL does beyond its result, in transaction and statement mode: LISTEN/UNLISTEN, session state that
// pins it to its server, session SETs to follow. Read off simple Queries and off Parse/Bind/Execute of a statement.

import { readCString } from "../protocol/messages.ts";
import { F_BIND, F_EXECUTE, F_PARSE, F_QUERY } from "../protocol/tags.ts";
import { type ListenOp, listenOps } from "../notify/listen-sql.ts";
import { type SessionEffects, sessionEffects } from "./session-state.ts";

export interface Effects {
  listen: ListenOp[] | null;
  session: SessionEffects | null;
}

/** Told when a statement with effects is sent to the server (run now, or executed later). */
export interface EffectSink {
  effects(e: Effects): void;
}

const utf8 = new TextDecoder();

/**
 * Whether a statement starting at `at` may have effects, read off its bytes without decoding them: it starts with
 * c(reate) d(eclare) l(isten) p(repare) r(eset) u(nlisten) w(ith) or set; a SELECT only when it names an advisory lock
 * ("y_l") or a temporary table ("temp"). SELECT is most of what goes by: most of them are settled in a few bytes.
 */
function mayHaveEffects(buf: Uint8Array, at: number, end: number): boolean {
  const b = buf[at]! | 0x20;
  if (b === 0x63 || b === 0x64 || b === 0x6c || b === 0x70 || b === 0x72 || b === 0x75 || b === 0x77) return true;
  if (b !== 0x73) return false;
  if ((buf[at + 1]! | 0x20) === 0x65 && (buf[at + 2]! | 0x20) === 0x74) return true; // set
  for (let i = at + 3; i + 3 < end; i++) {
    const x = buf[i]! | 0x20;
    if (x === 0x79 && buf[i + 1] === 0x5f && (buf[i + 2]! | 0x20) === 0x6c) return true; // y_l
    if (x === 0x74 && (buf[i + 1]! | 0x20) === 0x65 && (buf[i + 2]! | 0x20) === 0x6d && (buf[i + 3]! | 0x20) === 0x70) return true; // temp
  }
  return false;
}

export class SqlWatch {
  /** Named statements and portals with effects ("" is the unnamed one); made at the first one (most clients have none). */
  private statements: Map<string, Effects> | null = null;
  private portals: Map<string, Effects> | null = null;

  constructor(private readonly sink: EffectSink) {}

  /** Looks at a Query, Parse, Bind or Execute on its way to the server. */
  see(tag: number, buf: Uint8Array, start: number, end: number): void {
    switch (tag) {
      case F_QUERY:
      case F_PARSE: {
        let at = start + 5;
        let name = "";
        if (tag === F_PARSE) {
          const nul = buf.indexOf(0, at);
          if (nul < 0 || nul >= end) return;
          name = utf8.decode(buf.subarray(at, nul));
          at = nul + 1;
        }
        while (at < end && (buf[at] === 0x20 || buf[at] === 0x0a || buf[at] === 0x09 || buf[at] === 0x0d)) at++;
        const semi = tag === F_QUERY ? buf.indexOf(0x3b, at) : -1;
        const e = mayHaveEffects(buf, at, end) || (semi >= 0 && semi < end) ? effectsOf(readCString(buf, at, end)[0]) : null;
        if (tag === F_QUERY) {
          if (e !== null) this.sink.effects(e);
        } else if (e !== null) {
          (this.statements ??= new Map()).set(name, e);
        } else if (this.statements !== null) {
          this.statements.delete(name);
        }
        return;
      }
      case F_BIND: {
        if (this.statements === null && this.portals === null) return;
        const [portal, next] = readCString(buf, start + 5, end);
        const e = this.statements?.get(readCString(buf, next, end)[0]);
        if (e !== undefined) (this.portals ??= new Map()).set(portal, e);
        else this.portals?.delete(portal);
        return;
      }
      case F_EXECUTE: {
        if (this.portals === null) return;
        const e = this.portals.get(readCString(buf, start + 5, end)[0]);
        if (e !== undefined) this.sink.effects(e);
        return;
      }
    }
  }
}

function effectsOf(text: string): Effects | null {
  const listen = listenOps(text);
  const session = sessionEffects(text);
  return listen === null && session === null ? null : { listen, session };
}
