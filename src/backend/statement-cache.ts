// A server's prepared statements (by content name, LRU-bounded) and the replies pgbun makes up for its clients' statements.

import { closeStatement, DOOMED_BIND, type PreparedInfo } from "../protocol/statements.ts";
import { B_PARSE_COMPLETE, F_BIND, F_CLOSE, F_PARSE } from "../protocol/tags.ts";
import { HAS_OP, INTERNAL, K_BIND, K_SYNTH, KIND, REPLACE_ERROR } from "./reply-tracker.ts";
import type { ServerConn } from "./server.ts";

export class StatementCache {
  /** Statements prepared here by content name, least recently used first. */
  readonly prepared = new Map<string, true>();
  /** Statements whose cached plan went stale after DDL: closed and prepared again on next use. */
  private readonly stale = new Set<string>();
  /** Replies pgbun made up, sent in order once what precedes them is answered. */
  private readonly synth: Array<[Uint8Array | (() => Uint8Array), (() => void) | undefined]> = [];
  /** Errors to show the client in place of the server's, for requests meant to fail. */
  private readonly replacements: Uint8Array[] = [];
  /** Parse/Close of named statements in flight: [isParse, name, undo for the client]. */
  private readonly statementOps: Array<[boolean, string, (() => void) | undefined]> = [];
  private lastBound = "";

  constructor(private readonly server: ServerConn) {}

  get size(): number {
    return this.prepared.size;
  }

  /** PostgreSQL skipped a request after an error: undo what pgbun assumed it would do. */
  skipped(entry: number): void {
    if (entry & REPLACE_ERROR) this.replacements.shift();
    const kind = entry & KIND;
    if (kind === K_SYNTH) this.synth.shift()?.[1]?.();
    if (entry & HAS_OP) {
      const op = this.statementOps.shift();
      if (op === undefined) return;
      if (op[0]) this.prepared.delete(op[1]);
      else this.prepared.set(op[1], true);
      op[2]?.();
    }
  }

  /** The error to show instead of the server's for the failing request at the head. */
  replacement(): Uint8Array | undefined {
    return this.replacements[0];
  }

  /** A ParseComplete or CloseComplete answered a named-statement request. */
  confirmed(): void {
    this.statementOps.shift();
  }

  /** After DDL a shared statement's plan is stale: PostgreSQL says so once; it is prepared afresh next time. */
  onError(code: string, message: string): void {
    if (code === "0A000" && this.lastBound && message.startsWith("cached plan must not change result type")) {
      this.prepared.delete(this.lastBound);
      this.stale.add(this.lastBound);
    }
  }

  /** DISCARD ALL or DEALLOCATE ALL ran on the server. */
  forgetAll(): void {
    this.prepared.clear();
    this.stale.clear();
  }

  /** Sends the made-up replies that have reached the head. */
  emitSynth(): void {
    while ((this.server.tracker.headKind & KIND) === K_SYNTH) {
      this.server.flushForward();
      const s = this.synth.shift()![0];
      this.server.client?.outbox.send(typeof s === "function" ? s() : s);
      this.server.tracker.popSynth();
    }
  }

  /** Answers the client with bytes pgbun makes up, after every reply owed before them. */
  reply(bytes: Uint8Array | (() => Uint8Array), onSkip?: () => void): void {
    if (this.server.tracker.skipTillSync) {
      onSkip?.();
      return;
    }
    if (this.server.tracker.owed === 0) {
      this.server.flushForward();
      this.server.client?.outbox.send(typeof bytes === "function" ? bytes() : bytes);
      return;
    }
    this.server.tracker.pushSynth();
    this.synth.push([bytes, onSkip]);
  }

  /** Makes PostgreSQL fail here as it would have for the client's request (aborting the transaction, skipping to Sync), showing `error` instead. */
  failWith(error: Uint8Array): void {
    if (this.server.tracker.skipTillSync) return;
    this.server.tracker.pushReplacing(K_BIND);
    this.replacements.push(error);
    this.server.outbox!.send(DOOMED_BIND);
  }

  /**
   * A client's Parse of a named statement: answered by pgbun when this server already holds it.
   * `forget` undoes the client's name if PostgreSQL fails or skips the Parse.
   */
  parseStatement(info: PreparedInfo, forget: () => void): void {
    if (this.server.tracker.skipTillSync) {
      forget();
      return;
    }
    if (this.prepared.has(info.serverName)) {
      this.touch(info.serverName);
      this.server.owner.stats.prepared_statements_hits++;
      this.reply(PARSE_COMPLETE, forget);
      return;
    }
    this.prepareHere(info, 0, forget);
  }

  /** A client's Bind or Describe of its named statement, renamed: the server prepares it first if it lacks it. */
  useStatement(tag: number, info: PreparedInfo, renamed: Uint8Array): void {
    if (this.prepared.has(info.serverName)) {
      this.touch(info.serverName);
      this.server.owner.stats.prepared_statements_hits++;
    } else {
      this.server.owner.stats.prepared_statements_misses++;
      this.prepareHere(info, INTERNAL);
    }
    if (tag === F_BIND) this.lastBound = info.serverName;
    this.server.tracker.sent(tag);
    this.server.outbox!.send(renamed);
  }

  private touch(name: string): void {
    this.prepared.delete(name);
    this.prepared.set(name, true);
  }

  private prepareHere(info: PreparedInfo, flag: number, onSkip?: () => void): void {
    const name = info.serverName;
    if (this.stale.delete(name)) this.closeHere(name);
    while (this.prepared.size >= this.server.owner.maxPrepared) {
      const oldest = this.prepared.keys().next().value!;
      this.prepared.delete(oldest);
      this.server.owner.stats.prepared_statements_evictions++;
      this.closeHere(oldest);
    }
    this.server.tracker.sent(F_PARSE, flag | HAS_OP);
    this.statementOps.push([true, name, onSkip]);
    this.prepared.set(name, true);
    this.server.owner.stats.prepared_statements_prepared++;
    this.server.outbox!.send(info.parse);
  }

  private closeHere(name: string): void {
    this.server.tracker.sent(F_CLOSE, INTERNAL | HAS_OP);
    this.statementOps.push([false, name, undefined]);
    this.server.outbox!.send(closeStatement(name));
  }
}

const PARSE_COMPLETE = Uint8Array.of(B_PARSE_COMPLETE, 0, 0, 0, 4);

