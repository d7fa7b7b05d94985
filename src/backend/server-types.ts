// What a server connection expects of its pool and of the client linked to it.

import type { PoolMode } from "../config/schema.ts";
import type { Outbox } from "../net/outbox.ts";
import type { PoolStats } from "../pool/stats.ts";
import type { CloseReason } from "./close-reason.ts";
import type { ServerConn } from "./server.ts";
import type { KnownStatements } from "./statement-cache.ts";
import type { ClientListens } from "../notify/client-listens.ts";

/** connecting: logging in; idle: in the pool; active: linked to a client; cleanup: no client, finishing a rollback,
 *  reset or cancel before it may serve again; closed: gone. */
export type ServerState = "connecting" | "idle" | "active" | "cleanup" | "closed";

/** The pool a server belongs to, as the server sees it. */
export interface ServerOwner {
  readonly mode: PoolMode;
  readonly stats: PoolStats;
  readonly maxPacketSize: number;
  /** Size of each server's prepared-statement cache (max_prepared_statements). */
  readonly maxPrepared: number;
  /** Statements this pool's servers prepared successfully, by content name. */
  readonly knownStatements: KnownStatements;
  /** prepare_unnamed: content names of unnamed Parses seen (the second one prepares). */
  readonly unnamedSeen: KnownStatements;
  /** The reset query to run when a client leaves ("" for none). */
  readonly resetQuery: string;
  /** The only way a server's state changes: moves it between the pool's per-state collections. */
  changeState(s: ServerConn, next: ServerState): void;
  /** Facts about the pool that decide whether a free server is kept. */
  draining: boolean;
  overSize(): boolean;
  expired(s: ServerConn): boolean;
  /** The server logged in (state already idle): its parameters may welcome clients. */
  serverLoggedIn(s: ServerConn): void;
  /** A free server: link it to a waiting client or keep it idle. */
  serverFree(s: ServerConn): void;
  serverLoginFailed(s: ServerConn, reason: string): void;
  serverClosed(s: ServerConn, reason: CloseReason): void;
  /** A hint at the host's role: in_hot_standby reported (true/false) or 25006 read_only_sql_transaction (null). */
  roleHint?(s: ServerConn, inHotStandby: boolean | null): void;
  /** A NotificationResponse arrived; true when the owner took it (it is then not forwarded to the linked client). */
  notification(s: ServerConn, buf: Uint8Array, start: number, end: number): boolean;
}

/** The client linked to a server, as the server sees it. */
export interface LinkedClient {
  readonly id: number;
  readonly outbox: Outbox;
  readonly wanted: Map<string, string>;
  /** It holds session state on its server (advisory lock, temporary table, WITH HOLD cursor): it keeps that server. */
  pinned: boolean;
  /** After a transaction: the session-state check owed, if any (transaction and statement mode). */
  takeSessionCheck(): { pin: boolean; settings: string[] } | null;
  /** Its LISTENs, in transaction and statement mode; null until it sends one. */
  readonly listens: ClientListens | null;
  /** A signature of `wanted`: clients with equal keys need no SET between them. */
  paramsKey(): string;
  /** Changes one wanted parameter (undefined removes it). */
  setWanted(name: string, value: string | undefined): void;
  /** The server died under the client; `told` is true when PostgreSQL's own FATAL already reached it. */
  serverLost(message: string, told: boolean): void;
  /** The server is no longer the client's (released, refused or closed between requests). */
  unlinked(): void;
  /** Backpressure from the server side: stop or resume reading the client's socket. */
  pauseReading(on: boolean): void;
  /** Statement mode refused a transaction block: an error and an idle ReadyForQuery instead of the server's. */
  errorAndReady(code: string, message: string): void;
  /** A ReadyForQuery reached it and it stays linked: a client closing after Terminate may go now. */
  readyForwarded(serverQuiet: boolean): void;
  /** A hold on the server ended (its shape check is done): send what waited. */
  resumeHeld(): void;
}

export interface ServerTarget {
  host: string;
  port: number;
  database: string;
  user: string;
  password: string | undefined;
}
