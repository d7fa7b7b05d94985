// What the client side needs from the rest of pgbun: settings, who may log in where, and the pools to be served by.

import type { ServerTarget } from "../backend/server-types.ts";
import type { PoolMode, Settings } from "../config/schema.ts";
import type { PoolStats } from "../pool/stats.ts";
import type { CancelKeys } from "./cancel-keys.ts";
import type { ClientConn } from "./client.ts";
import type { ListenHub } from "../notify/hub.ts";

/** The pool a client is served by, as the client sees it. */
export interface ClientPool {
  readonly mode: PoolMode;
  readonly stats: PoolStats;
  readonly name: string;
  /** Answers every request itself, in order (the admin console): a lone Sync must queue behind what came before. */
  readonly local?: boolean;
  /** read_write_split: requests are routed whole (a replica for reads), so a client waits for a request's end to ask. */
  readonly splitsReads?: boolean;
  /** Whether a server of this pool prepared the statement of that content name successfully. */
  statementKnown?(serverName: string): boolean;
  /** The listening connection LISTEN goes through in transaction and statement mode (pools of servers only). */
  listenHub?(): ListenHub;
  /** The server parameters clients are shown at login; null until a server has logged in. */
  readonly welcome: Map<string, string> | null;
  /** Asks for a server login so that `welcome` becomes known; the pool then calls client.welcomed() or client.fatal(). */
  awaitWelcome(c: ClientConn): void;
  /** Links an idle server to the client at once if there is one (nothing queued yet); false otherwise. */
  tryLink(c: ClientConn): boolean;
  /** The client has requests queued: link a server now or queue it (FIFO). */
  acquire(c: ClientConn): void;
  clientJoined(c: ClientConn): void;
  clientLeft(c: ClientConn): void;
}

/** Where a login comes from, for auth_hba_file. */
export interface LoginFrom {
  /** Over the Unix socket (unix_socket_dir). */
  local: boolean;
  tls: boolean;
  /** The client's IP address ("" over the Unix socket). */
  addr: string;
  /** replication=true (physical) or replication=database (logical) in the startup packet. */
  replication: "physical" | "logical" | null;
}

/** How a client proves who it is: auth_type, a user's own auth_type, or the matching auth_hba_file line. */
export type ClientAuthMethod = "trust" | "plain" | "md5" | "scram-sha-256" | "cert";

export interface LoginTarget {
  /** The secret the client must prove: plain text, an md5 hash or a SCRAM verifier; undefined if the user is unknown. */
  password: string | undefined;
  /** Whether the user is known at all (trust mode admits known users only). */
  userKnown: boolean;
  /** The method, or [SQLSTATE, message] to refuse the login with before any password (an hba reject, no hba line). */
  method: ClientAuthMethod | { refuse: [string, string] };
  /** A replication connection's own server (never pooled); null when the database does not exist. */
  server(): ServerTarget | null;
  /** The pool, or null when the database does not exist. */
  pool(): ClientPool | null;
  /** After a successful login: a reason to refuse it anyway ([SQLSTATE, message]), or null. */
  refusal(): [string, string] | null;
}

export interface ClientContext {
  readonly settings: Settings;
  readonly cancelKeys: CancelKeys;
  /** A graceful shutdown runs: clients leave as their transactions end. */
  readonly shuttingDown: boolean;
  /** Decides where a (database, user) login goes; a promise while auth_query looks the user up. */
  lookup(database: string, user: string, from: LoginFrom): LoginTarget | Promise<LoginTarget>;
  /** A CancelRequest arrived on a new connection. */
  cancel(pid: number, secret: number): void;
  /** A client connected; false when that is over max_client_conn. */
  clientOpened(c: ClientConn): boolean;
  clientClosed(c: ClientConn): void;
}
