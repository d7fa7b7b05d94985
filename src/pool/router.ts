// The pool clients of a database with several hosts see: one host pool per host, and per checkout the host that serves
// it (the primary for writes, a replica for reads). Clients wait here while no host can serve them (primary_wait_timeout).

import { closeReason } from "../backend/close-reason.ts";
import type { ServerConn } from "../backend/server.ts";
import { clock } from "../clock.ts";
import type { DatabaseConfig, PoolMode, PrimaryReads, Settings } from "../config/schema.ts";
import type { ClientConn } from "../frontend/client.ts";
import type { ClientPool } from "../frontend/context.ts";
import type { ListenHub } from "../notify/hub.ts";
import { log } from "../log.ts";
import type { Cluster, ClusterListener, Host } from "./cluster.ts";
import { ReadRoute } from "../frontend/read-route.ts";
import { Fifo } from "./fifo.ts";
import type { Pool, PoolHooks, PoolSpec } from "./pool.ts";
import type { PoolStats } from "./stats.ts";

export type Route = "primary" | "replica";

/** The failures that say the host itself cannot be reached (no SQLSTATE: no connection; 08: connection; 57: shutting down, starting up). */
function hostLevel(reason: string): boolean {
  const code = /SQLSTATE ([0-9A-Z]{5})/.exec(reason)?.[1];
  return code === undefined || code.startsWith("08") || code.startsWith("57");
}

export class Router implements ClientPool, PoolHooks, ClusterListener {
  readonly pools = new Map<Host, Pool>();
  /** Clients with requests that no host can serve yet (no primary, no usable replica). */
  readonly waiters = new Fifo<ClientConn>();
  readonly clients = new Set<ClientConn>();
  welcome: Map<string, string> | null = null;
  draining = false;
  /** Clients logging in, waiting for a first server login's parameters, and since when. */
  private welcomeWaiters: Array<{ c: ClientConn; at: number }> = [];
  /** The host pool each client is counted in (SHOW POOLS, KILL): where it was last sent, or the primary's. */
  private readonly home = new Map<ClientConn, Pool>();
  /** Replica choice: ties in load go to the next host in turn. */
  private turn = 0;

  constructor(
    readonly cluster: Cluster,
    /** This router's database entry (its own role; a NAME_ro alias shares NAME's cluster). */
    public db: DatabaseConfig,
    public spec: PoolSpec,
    private readonly settings: () => Settings,
    private readonly makePool: (host: Host) => Pool,
  ) {
    for (const h of cluster.hosts) this.pools.set(h, makePool(h));
    cluster.listeners.add(this);
  }

  get name(): string {
    return this.spec.name;
  }
  get mode(): PoolMode {
    return this.spec.mode;
  }
  get role(): Route {
    return this.db.role ?? "primary";
  }
  get primaryReads(): PrimaryReads {
    return this.db.primary_reads ?? "fallback";
  }
  /** Counters not tied to one host (notifications, wait timeouts) go to the primary's pool. */
  get stats(): PoolStats {
    return this.defaultPool().stats;
  }

  /** The primary's pool, else the first host's. */
  private defaultPool(): Pool {
    const w = this.cluster.writable() ?? this.cluster.primary;
    return (w !== null ? this.pools.get(w) : undefined) ?? this.pools.values().next().value!;
  }

  /** LISTEN goes to the primary of the moment the client logged in; a failover ends it (08006) and the client listens again. */
  statementKnown(name: string): boolean {
    for (const p of this.pools.values()) if (p.knownStatements.has(name)) return true;
    return false;
  }

  listenHub(): ListenHub {
    return this.defaultPool().listenHub();
  }

  clientJoined(c: ClientConn): void {
    this.clients.add(c);
    this.assign(c, this.defaultPool());
  }

  awaitWelcome(c: ClientConn): void {
    if (this.welcome !== null) return c.welcomed(this.welcome);
    this.welcomeWaiters.push({ c, at: clock.now });
    this.fetchWelcome();
  }

  /** Logs a server in somewhere so that clients can be welcomed: the host that would serve them, else any not known down. */
  private fetchWelcome(): void {
    for (const p of this.pools.values()) if (p.welcome !== null) return this.welcomed(p);
    const h = this.pick(this.role)?.spec.host ?? this.cluster.hosts.find((x) => x.healthy !== false && !x.removed);
    const p = h === undefined ? undefined : this.pools.get(h);
    if (p !== undefined && p.connecting.size === 0 && !p.paused) p.launch();
  }

  private welcomed(p: Pool): void {
    if (this.welcome === null) {
      // Clients see the role of the database they asked for, whichever host logged in first (libpq's target_session_attrs reads it).
      this.welcome = new Map(p.welcome!);
      if (this.welcome.has("in_hot_standby")) this.welcome.set("in_hot_standby", this.role === "replica" ? "on" : "off");
    }
    const list = this.welcomeWaiters;
    this.welcomeWaiters = [];
    for (const w of list) w.c.welcomed(this.welcome);
  }

  /** read_write_split, in transaction and statement mode, for the database's read-write clients. */
  get splitsReads(): boolean {
    return this.db.read_write_split === true && this.mode !== "session" && this.role === "primary";
  }

  tryLink(c: ClientConn): boolean {
    // With read_write_split every request waits to be read whole before a host is picked for it.
    if (this.waiters.length > 0 || this.splitsReads) return false;
    const p = this.pick(this.routeFor(c));
    if (p === null || !p.tryLink(c)) return false;
    this.assign(c, p);
    return true;
  }

  acquire(c: ClientConn): void {
    const read = this.splitsReads ? c.readRequest() : null;
    const p = this.pick(read !== null ? "replica" : this.routeFor(c));
    // On a replica, what the client sends after its request waits until the replica has answered it (read-route.ts).
    c.route = read !== null && p !== null && p.spec.host !== this.cluster.writable() ? new ReadRoute() : null;
    if (p === null) {
      // A client sent back here keeps the time it started waiting: primary_wait_timeout counts from then.
      if (c.state !== "waiting") {
        c.state = "waiting";
        c.since = clock.now;
      }
      this.waiters.push(c);
      return;
    }
    this.assign(c, p);
    p.acquire(c);
  }

  clientLeft(c: ClientConn): void {
    this.clients.delete(c);
    this.waiters.remove(c);
    const wi = this.welcomeWaiters.findIndex((w) => w.c === c);
    if (wi >= 0) this.welcomeWaiters.splice(wi, 1);
    const p = this.home.get(c);
    this.home.delete(c);
    p?.clientLeft(c);
  }

  /** Where a client's next checkout goes. */
  routeFor(_c: ClientConn): Route {
    return this.role;
  }

  /** The host pool for a route now, or null when no host can take it. */
  pick(route: Route): Pool | null {
    const primary = this.cluster.writable();
    if (route === "primary") return primary === null ? null : (this.pools.get(primary) ?? null);
    // Until every host has answered a first check, a replica may be about to be found: reads wait rather than fall back.
    if (!this.cluster.settled()) return null;
    const hosts = this.cluster.readable();
    if (primary !== null && this.primaryReads === "true") hosts.push(primary);
    if (hosts.length === 0) return primary !== null && this.primaryReads === "fallback" ? (this.pools.get(primary) ?? null) : null;
    return this.leastBusy(hosts);
  }

  /**
   * The replica with the fewest servers in use plus clients waiting; ties in turn. Least busy rather than plain round
   * robin: a replica that answers slowly (a long report, a slower machine) keeps its servers longer and gets fewer new
   * checkouts, where round robin would keep queueing clients behind it.
   */
  private leastBusy(hosts: Host[]): Pool | null {
    let best: Pool | null = null;
    let bestLoad = Infinity;
    const n = hosts.length;
    const first = this.turn++ % n;
    for (let i = 0; i < n; i++) {
      const p = this.pools.get(hosts[(first + i) % n]!);
      if (p === undefined || p.draining) continue;
      const load = p.active.size + p.waiters.length;
      if (load < bestLoad) {
        best = p;
        bestLoad = load;
      }
    }
    return best;
  }

  private assign(c: ClientConn, p: Pool): void {
    const old = this.home.get(c);
    if (old === p) return;
    old?.clients.delete(c);
    p.clients.add(c);
    this.home.set(c, p);
  }

  /** Sends waiting clients again: to a host that can serve them now, or back to wait here. */
  private retry(): void {
    if (this.welcomeWaiters.length > 0) this.fetchWelcome();
    if (this.waiters.length === 0) return;
    for (const c of this.waiters.drain()) if (c.state === "waiting") this.acquire(c);
  }

  /** Clients queued on a host pool that no longer serves their route go back through the router. */
  private reroute(p: Pool): void {
    for (const c of p.waiters.drain()) if (c.state === "waiting") this.acquire(c);
  }

  // ClusterListener

  changed(): void {
    for (const p of this.pools.values()) {
      const h = p.spec.host!;
      if (p.waiters.length > 0 && (h.healthy === false || (h !== this.cluster.writable() && !this.cluster.readable().includes(h)))) this.reroute(p);
    }
    this.retry();
  }

  primaryMoved(old: Host): void {
    const p = this.pools.get(old);
    if (p === undefined) return;
    this.reroute(p);
    const why = closeReason("failover", `${old.key} is no longer the primary of database "${this.name}"`);
    for (const s of [...p.servers]) {
      // One still logging in is closed by its check-in once it has (closing it now would look like a failed login).
      if (s.state === "connecting") s.retire = true;
      else s.close(why);
    }
    this.retry();
  }

  // PoolHooks

  loggedIn(p: Pool, s: ServerConn): void {
    if (this.welcome === null || this.welcomeWaiters.length > 0) this.welcomed(p);
    const standby = s.reported.get("in_hot_standby");
    const h = p.spec.host!;
    // The role checks cannot log in: a pool's own login tells the host's role instead (as libpq's target_session_attrs).
    if (standby !== undefined && h.unauthorized) this.cluster.observe(h, { ok: true, inRecovery: standby === "on", lsn: null, replayBacklog: 0, lagSeconds: 0 }, Date.now());
    else if (standby !== undefined) this.roleHint(p, standby === "on");
  }

  loginFailed(p: Pool, reason: string): boolean {
    const h = p.spec.host!;
    if (!hostLevel(reason)) {
      // Not the host's fault (a wrong password, an unknown database): the clients waiting for a login are told now.
      const message = `pgbun: cannot log in to ${h.key} for database "${this.name}": ${reason}`;
      for (const w of this.welcomeWaiters.splice(0)) w.c.fatal("08006", message);
      return false;
    }
    this.cluster.loginFailed(h, reason);
    this.reroute(p);
    this.retry();
    return true;
  }

  roleHint(p: Pool, inHotStandby: boolean | null): void {
    const h = p.spec.host!;
    if (inHotStandby === true && h === this.cluster.primary) {
      // Proof enough: a server of the primary is in recovery. Writes must not reach it even until the next check.
      this.cluster.observe(h, { ok: true, inRecovery: true, lsn: h.lsn, replayBacklog: 0, lagSeconds: 0 }, Date.now());
    } else if (inHotStandby === null || (inHotStandby === false && h !== this.cluster.primary) || (inHotStandby && h.role !== "replica")) {
      this.cluster.recheck(h);
    }
  }

  /** The janitor's tick: clients that waited longer than primary_wait_timeout for a host get an error. */
  tick(now: number): void {
    if (this.waiters.length > 0 || this.welcomeWaiters.length > 0) this.retry();
    // Clients wait and the checks cannot log in: one server login per host of unknown role tells its role.
    if (this.waiters.length > 0) {
      for (const [h, p] of this.pools) if (h.unauthorized && h.role === "unknown" && h.healthy !== false && p.servers.size === 0 && !p.paused) p.launch();
    }
    const limit = this.settings().primary_wait_timeout * 1000;
    if (limit <= 0) return;
    const late = (since: number) => now - since > limit;
    if (this.welcomeWaiters.some((w) => late(w.at))) {
      const keep: typeof this.welcomeWaiters = [];
      for (const w of this.welcomeWaiters) if (late(w.at)) w.c.fatal("57P03", this.noHostMessage(this.role)); else keep.push(w);
      this.welcomeWaiters = keep;
    }
    for (const c of this.waiters.drain()) {
      if (late(c.since)) {
        log.warn("ha", "client waited longer than primary_wait_timeout for a host", { database: this.name, client: c.id });
        c.fatal("57P03", this.noHostMessage(this.routeFor(c)));
      } else this.waiters.push(c);
    }
  }

  private noHostMessage(route: Route): string {
    const s = this.settings().primary_wait_timeout;
    const hosts = this.cluster.hosts.map((h) => `${h.key} ${h.role} ${h.state()}${h.lastError ? ` (${h.lastError})` : ""}`).join("; ");
    const what =
      route === "primary"
        ? `no primary of database "${this.name}" could be reached`
        : `no replica of database "${this.name}" can take reads${this.primaryReads === "false" ? " (primary_reads = false keeps them off the primary)" : " and no primary either"}`;
    return `pgbun: primary_wait_timeout: ${what} within ${s}s [${hosts}]; check the cluster, or raise primary_wait_timeout`;
  }

  /** A reload: the database's entry and this user's pool settings may have changed; hosts may have come or gone. */
  update(db: DatabaseConfig, spec: PoolSpec, specFor: (h: Host) => PoolSpec): void {
    this.db = db;
    this.spec = spec;
    for (const h of this.cluster.hosts) {
      const p = this.pools.get(h);
      if (p === undefined) this.pools.set(h, this.makePool(h));
      else p.spec = specFor(h);
    }
    for (const [h, p] of this.pools) {
      if (!h.removed) continue;
      this.pools.delete(h);
      p.draining = true;
      this.reroute(p);
      for (const c of [...p.clients]) if (c.server?.owner !== p) this.assign(c, this.defaultPool());
      p.retireAll();
    }
    this.retry();
  }
}
