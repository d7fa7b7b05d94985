// One pool per (database, user): its server connections, one collection per server state, the FIFO of clients
// waiting for a server, and its counters.

import { KnownStatements } from "../backend/statement-cache.ts";
import { type CloseReason, describeClose } from "../backend/close-reason.ts";
import { ServerConn, type ServerOwner, type ServerState, type ServerTarget } from "../backend/server.ts";
import type { PoolMode, Settings } from "../config/schema.ts";
import type { ClientConn } from "../frontend/client.ts";
import type { ClientPool } from "../frontend/context.ts";
import { clock } from "../clock.ts";
import { log } from "../log.ts";
import { Fifo } from "./fifo.ts";
import { ListenHub } from "../notify/hub.ts";
import { PoolStats } from "./stats.ts";
import type { Host } from "./cluster.ts";

export interface PoolSpec {
  /** The database name clients connect to. */
  name: string;
  /** The client user this pool serves. */
  user: string;
  target: ServerTarget;
  mode: PoolMode;
  size: number;
  minSize: number;
  /** Databases with several hosts: the host this pool's servers go to (its router picks the pool per checkout). */
  host?: Host;
}

/** What the router of a database with several hosts learns from each of its host pools. */
export interface PoolHooks {
  loggedIn(p: Pool, s: ServerConn): void;
  /** The pool's last server failed to log in; true when the router took care of the clients waiting on the pool. */
  loginFailed(p: Pool, reason: string): boolean;
  /** A server hinted at its host's role: in_hot_standby changed (true/false), or 25006 read_only_sql_transaction (null). */
  roleHint(p: Pool, inHotStandby: boolean | null): void;
}

export class Pool implements ServerOwner, ClientPool {
  readonly stats = new PoolStats();
  /** Every server not yet closed, whatever its state. */
  readonly servers = new Set<ServerConn>();
  readonly connecting = new Set<ServerConn>();
  /** Idle servers, most recently used last (handed out LIFO, so the coldest ones time out). */
  readonly idle: ServerConn[] = [];
  readonly active = new Set<ServerConn>();
  readonly cleanup = new Set<ServerConn>();
  readonly waiters = new Fifo<ClientConn>();
  readonly clients = new Set<ClientConn>();
  welcome: Map<string, string> | null = null;
  private welcomeWaiters: ClientConn[] = [];
  lastError = "";
  lastErrorAt = 0;
  /** Date.now() of the last successful server login; 0 before the first. */
  lastLoginAt = 0;
  /** PAUSE: no new server assignments until RESUME. */
  paused = false;
  /** Removed from the config (or DISABLEd): refuse new clients, close servers as they come back. */
  draining = false;
  /** The listening connection for LISTEN in transaction and statement mode; made on first use. */
  private hub: ListenHub | null = null;
  /** Set when the pool is one host's pool of a database with several hosts. */
  hooks: PoolHooks | null = null;

  constructor(
    public spec: PoolSpec,
    private readonly settings: () => Settings,
  ) {}

  get name(): string {
    return this.spec.name;
  }
  get mode(): PoolMode {
    return this.spec.mode;
  }
  get maxPacketSize(): number {
    return this.settings().max_packet_size;
  }
  readonly knownStatements = new KnownStatements();
  readonly unnamedSeen = new KnownStatements();
  /** A client's Parse of a statement some server here prepared needs no server (it is made where first used). */
  statementKnown(name: string): boolean {
    return this.knownStatements.has(name);
  }
  get maxPrepared(): number {
    return this.settings().max_prepared_statements;
  }
  get resetQuery(): string {
    return this.settings().server_reset_query;
  }

  /** The one place a server's state changes: it leaves the collection of its old state and joins the new one's. */
  changeState(s: ServerConn, next: ServerState): void {
    const prev = s.state;
    if (prev === next) return;
    switch (prev) {
      case "connecting":
        this.connecting.delete(s);
        break;
      case "idle": {
        const i = this.idle.lastIndexOf(s);
        if (i >= 0) this.idle.splice(i, 1);
        break;
      }
      case "active":
        this.active.delete(s);
        break;
      case "cleanup":
        this.cleanup.delete(s);
        break;
      case "closed":
        return; // closed is final
    }
    s.state = next;
    s.stateSince = clock.now;
    switch (next) {
      case "connecting":
        this.connecting.add(s);
        break;
      case "idle":
        this.idle.push(s);
        break;
      case "active":
        this.active.add(s);
        break;
      case "cleanup":
        this.cleanup.add(s);
        break;
      case "closed":
        this.servers.delete(s);
        break;
    }
  }

  /** Pool servers' notifications: passed on in session mode; otherwise only the listening connection's count. */
  notification(): boolean {
    return this.mode !== "session";
  }

  /** The pool's listening connection (transaction and statement mode). */
  listenHub(): ListenHub {
    return (this.hub ??= new ListenHub(this.spec.target, this.stats, () => this.maxPacketSize));
  }

  /** The janitor's tick for the listening connection. */
  tickHub(now: number): void {
    if (this.hub === null) return;
    if (this.draining) this.hub.close();
    else this.hub.tick(now);
  }

  get listenSubscribers(): number {
    return this.hub?.subscribers ?? 0;
  }

  overSize(): boolean {
    return this.servers.size > this.spec.size;
  }

  expired(s: ServerConn): boolean {
    const lifetime = this.settings().server_lifetime;
    return lifetime > 0 && clock.now - s.createdAt > lifetime * 1000;
  }

  clientJoined(c: ClientConn): void {
    this.clients.add(c);
  }

  awaitWelcome(c: ClientConn): void {
    this.welcomeWaiters.push(c);
    if (this.connecting.size === 0) this.launch();
  }

  tryLink(c: ClientConn): boolean {
    if (this.paused || this.waiters.length > 0) return false;
    const s = this.idle[this.idle.length - 1];
    if (s === undefined) return false;
    this.link(c, s, false);
    return true;
  }

  acquire(c: ClientConn): void {
    if (!this.paused) {
      const s = this.idle[this.idle.length - 1];
      if (s !== undefined) {
        this.link(c, s);
        return;
      }
    }
    c.state = "waiting";
    c.since = clock.now;
    this.waiters.push(c);
    this.grow();
  }

  /** Opens server connections for waiting clients, up to the pool size. */
  grow(): void {
    if (this.paused) return;
    while (this.servers.size < this.spec.size && this.connecting.size < this.waiters.length) this.launch();
  }

  launch(): ServerConn {
    const s = new ServerConn(this, this.spec.target);
    this.servers.add(s);
    this.connecting.add(s);
    this.stats.server_connections_opened++;
    if (this.servers.size > this.stats.server_connections_peak) this.stats.server_connections_peak = this.servers.size;
    s.connect();
    return s;
  }

  private link(c: ClientConn, s: ServerConn, waited = true): void {
    this.stats.server_assignment_count++;
    if (s.links === 0) this.stats.server_assignment_fresh++;
    if (waited) this.stats.wait_time_us += Math.round((performance.now() - c.waitStartedAt) * 1000);
    s.link(c);
    c.linked(s);
  }

  serverLoggedIn(s: ServerConn): void {
    this.lastError = "";
    this.lastLoginAt = Date.now();
    if (this.welcome === null) {
      this.welcome = new Map(s.reported);
      const list = this.welcomeWaiters;
      this.welcomeWaiters = [];
      for (const c of list) c.welcomed(this.welcome);
    }
    this.hooks?.loggedIn(this, s);
  }

  roleHint(_s: ServerConn, inHotStandby: boolean | null): void {
    this.hooks?.roleHint(this, inHotStandby);
  }

  /** A server just became idle: the longest-waiting client gets it. */
  serverFree(s: ServerConn): void {
    if (this.paused || s.state !== "idle") return;
    const c = this.waiters.shift();
    if (c !== undefined) this.link(c, s);
  }

  serverLoginFailed(s: ServerConn, reason: string): void {
    this.servers.delete(s);
    this.connecting.delete(s);
    this.stats.server_connections_failed++;
    this.lastError = reason;
    this.lastErrorAt = Date.now();
    log.warn("pool", "server login failed", { pool: this.name, user: this.spec.user, server: s.id, reason });
    // Nothing else can serve them soon: tell waiting clients now rather than at query_wait_timeout.
    if (this.servers.size === 0) {
      if (this.hooks?.loginFailed(this, reason)) return;
      const message = `pgbun: cannot connect to the server for database "${this.name}": ${reason}`;
      for (const c of this.welcomeWaiters.splice(0)) c.fatal("08006", message);
      for (const c of this.waiters.drain()) c.fatal("08006", message);
    }
  }

  serverClosed(s: ServerConn, reason: CloseReason): void {
    this.stats.server_connections_closed++;
    log.debug("pool", "server closed", { pool: this.name, server: s.id, reason: describeClose(reason) });
    this.grow();
  }

  clientLeft(c: ClientConn): void {
    this.clients.delete(c);
    if (c.state === "waiting" || c.state === "closed") this.waiters.remove(c);
    const wi = this.welcomeWaiters.indexOf(c);
    if (wi >= 0) this.welcomeWaiters.splice(wi, 1);
    const s = c.server;
    if (s !== null) {
      this.stats.xact_time_us += Math.round((performance.now() - c.linkedAt) * 1000);
      s.clientLeft(this.mode === "session" || this.settings().server_reset_query_always);
    }
  }

  /** Resumes handing out servers (after PAUSE), serving waiters from idle servers first. */
  resume(): void {
    this.paused = false;
    while (this.waiters.length > 0 && this.idle.length > 0) this.link(this.waiters.shift()!, this.idle[this.idle.length - 1]!);
    this.grow();
  }

  /** Closes every server of this pool once it is idle (RECONNECT, reload of its target). */
  retireAll(): void {
    for (const s of this.servers) s.retire = true;
    for (const s of [...this.idle]) s.decide();
  }

  get activeServers(): number {
    return this.active.size;
  }
}
