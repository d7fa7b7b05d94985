// What a server connection expects of its pool and of the client linked to it.

import type { PoolMode } from "../config/schema.ts";
import type { Outbox } from "../net/outbox.ts";
import type { PoolStats } from "../pool/stats.ts";
import type { ServerConn } from "./server.ts";

export type ServerState = "connecting" | "idle" | "active" | "cleanup" | "closed";

/** The pool a server belongs to, as the server sees it. */
export interface ServerOwner {
  readonly mode: PoolMode;
  readonly stats: PoolStats;
  readonly maxPacketSize: number;
  /** Size of each server's prepared-statement cache (max_prepared_statements). */
  readonly maxPrepared: number;
  serverReady(s: ServerConn): void;
  serverLoginFailed(s: ServerConn, reason: string): void;
  serverClosed(s: ServerConn, reason: string): void;
  /** The server finished a client's transaction (or its cleanup) and may serve someone else. */
  serverReleasable(s: ServerConn): void;
  /** Statement mode: the client left a transaction block open. */
  transactionRefused(s: ServerConn, client: LinkedClient): void;
}

/** The client linked to a server, as the server sees it. */
export interface LinkedClient {
  readonly id: number;
  readonly outbox: Outbox;
  readonly wanted: Map<string, string>;
  /** A signature of `wanted`: clients with equal keys need no SET between them. */
  paramsKey(): string;
  /** Changes one wanted parameter (undefined removes it). */
  setWanted(name: string, value: string | undefined): void;
  /** The server connection died under the client. */
  serverLost(message: string): void;
  /** The pool took the server back; the client is unlinked. */
  unlinked(): void;
  /** Backpressure from the server side: stop or resume reading the client's socket. */
  pauseReading(on: boolean): void;
}

/** A request pgbun made itself: every reply to it is handed here instead of to a client. */
export interface InternalRequest {
  onReply(tag: number, buf: Uint8Array, start: number, end: number): void;
  done(server: ServerConn): void;
}

export interface ServerTarget {
  host: string;
  port: number;
  database: string;
  user: string;
  password: string | undefined;
}

