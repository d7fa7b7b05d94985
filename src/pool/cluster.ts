// The hosts of one database with several hosts: each host's role (learned with pg_is_in_recovery()), health, lag and
// ban, which host is the primary, and the checks that keep all of it current (run from the janitor's tick).

import type { ServerTarget } from "../backend/server-types.ts";
import { hostKey, parseLag, type HostAddress, type LagLimit } from "../config/hosts.ts";
import type { DatabaseConfig, Settings } from "../config/schema.ts";
import { log } from "../log.ts";
import { decideRole, type RoleDecision } from "./role-decision.ts";
import { probeRole, type ProbeResult } from "./role-probe.ts";

export type HostRole = "unknown" | "primary" | "replica";
/** What SHOW HOSTS and /healthz say of a host, worst first. */
export type HostState = "unknown" | "down" | "split_brain" | "unconfirmed" | "banned" | "lagging" | "up";

/** How often hosts are checked while the primary is gone (the janitor's tick). */
const HURRY_MS = 250;
/** PostgreSQL's too_many_connections: a full server is not a down one. */
const TOO_MANY_CONNECTIONS = "53300";

export class Host {
  readonly key: string;
  role: HostRole = "unknown";
  /** The latest check's outcome: null before the first one. */
  healthy: boolean | null = null;
  /** Out of recovery while another host is the primary (split brain), or not Patroni's leader: gets nothing. */
  claim: "none" | "conflict" | "unconfirmed" = "none";
  /** The primary's WAL position, or a replica's replayed one, at the latest check. */
  lsn: bigint | null = null;
  lagBytes: number | null = null;
  lagSeconds: number | null = null;
  lagging = false;
  /** Date.now() until which a replica gets no reads after a failed check (ban_timeout). */
  bannedUntil = 0;
  lastCheckAt = 0;
  lastOkAt = 0;
  lastError = "";
  patroni: "leader" | "not-leader" | "none" = "none";
  /** A check has completed, whatever it found. */
  checked = false;
  /**
   * The checks cannot log in (no plain password for the user they log in as: only a SCRAM verifier). The host's role is
   * then learned from the pools' own logins (in_hot_standby), and its lag is not known.
   */
  unauthorized = false;
  checking = false;
  /** A check is wanted at the next tick, whatever role_check_interval says (25006 from a server, a failed login). */
  due = false;
  roleChanges = 0;
  bans = 0;
  /** Set when a reload removed the host: its pools drain. */
  removed = false;

  constructor(
    readonly address: HostAddress,
    public patroniUrl: string,
  ) {
    this.key = hostKey(address);
  }

  state(now = Date.now()): HostState {
    if (this.healthy === null) return "unknown";
    if (!this.healthy) return "down";
    if (this.claim === "conflict") return "split_brain";
    if (this.claim === "unconfirmed") return "unconfirmed";
    if (this.role === "replica" && now < this.bannedUntil) return "banned";
    if (this.role === "replica" && this.lagging) return "lagging";
    return "up";
  }
}

/** What a cluster tells the routers of its database. */
export interface ClusterListener {
  /** Something changed that may let waiting clients through (a primary found, a replica usable again). */
  changed(): void;
  /** The primary is no longer `old` (failover, demotion): its servers must go and its waiting clients be routed again. */
  primaryMoved(old: Host): void;
}

export class Cluster {
  hosts: Host[];
  primary: Host | null = null;
  /** Times the primary moved from one host to another. */
  failovers = 0;
  /** Date.now() when the primary last went down or into recovery: for a minute after, hosts are checked every tick. */
  private lostAt = 0;
  readonly listeners = new Set<ClusterListener>();
  private lag: LagLimit;

  constructor(
    public db: DatabaseConfig,
    private readonly settings: () => Settings,
    /** Who the checks log in as (the pools' credentials); null while nobody is known. */
    private readonly login: () => ServerTarget | null,
  ) {
    this.hosts = (db.hosts ?? [{ host: db.host, port: db.port }]).map((a, i) => new Host(a, db.patroni_url?.[i] ?? ""));
    this.lag = parseLag(settings().max_replica_lag);
  }

  get name(): string {
    return this.db.name;
  }

  /** The primary, when it answers as one and nothing makes it doubtful: the only host writes go to. */
  writable(): Host | null {
    const p = this.primary;
    return p !== null && p.healthy === true && p.claim === "none" && !p.removed ? p : null;
  }

  /** Replicas that may take reads now: up, past any ban, within max_replica_lag. */
  readable(now = Date.now()): Host[] {
    return this.hosts.filter((h) => h.role === "replica" && !h.removed && h.state(now) === "up");
  }

  /** Every host has been checked at least once, and its role is known unless it is down. */
  settled(): boolean {
    return this.hosts.every((h) => h.removed || (h.checked && !(h.unauthorized && h.role === "unknown" && h.healthy !== false)));
  }

  /** Starts the checks that are due; called by the janitor's tick. */
  tick(now: number): void {
    this.lag = parseLag(this.settings().max_replica_lag);
    // While the primary is gone, a promoted replica is found within a tick rather than role_check_interval.
    const hurry = this.writable() === null && now - this.lostAt < 60_000;
    const every = Math.min(this.settings().role_check_interval * 1000, hurry ? HURRY_MS : Infinity);
    for (const h of this.hosts) {
      if (!h.checking && !h.removed && (h.due || now - h.lastCheckAt >= every)) void this.check(h);
    }
  }

  /** A reason to doubt a host's role (25006 from one of its servers, in_hot_standby changed): check it at the next tick. */
  recheck(h: Host): void {
    if (!h.checking && !h.removed && Date.now() - h.lastCheckAt > 100) void this.check(h);
    else h.due = true;
  }

  /** A server login to the host failed for want of a connection: down until a check says otherwise. */
  loginFailed(h: Host, reason: string): void {
    if (h.healthy === false) return;
    this.apply(h, "down", reason, Date.now());
    h.due = true;
  }

  async check(h: Host): Promise<void> {
    const target = this.login();
    if (target === null) return;
    h.checking = true;
    h.due = false;
    h.lastCheckAt = Date.now();
    const s = this.settings();
    const timeoutMs = Math.max(1000, Math.min(s.server_connect_timeout * 1000 || 5000, 3 * s.role_check_interval * 1000));
    const [r, patroni] = await Promise.all([
      probeRole({ ...target, host: h.address.host, port: h.address.port }, timeoutMs),
      askPatroni(h.patroniUrl, timeoutMs),
    ]);
    h.checking = false;
    if (h.removed) return;
    h.patroni = patroni;
    // invalid_authorization_specification: the checks' credentials, not the host; roles then come from the pools' logins.
    const unauthorized = !r.ok && r.code?.startsWith("28") === true;
    if (unauthorized && !h.unauthorized) {
      log.warn("ha", "the role check cannot log in: give the database a user and password, or the user a plain password ([users] or auth_file); meanwhile the pools' logins tell the role", {
        database: this.name,
        host: h.key,
        error: r.ok ? "" : r.error,
      });
    }
    h.unauthorized = unauthorized;
    this.observe(h, r, Date.now());
  }

  /** Acts on one check's result. */
  observe(h: Host, r: ProbeResult, now: number): void {
    h.checked = true;
    const p = this.primary;
    const primary = p === null ? "none" : p === h ? "this" : p.healthy === false ? "other-down" : "other-up";
    const decision = decideRole({
      primary,
      ok: r.ok,
      inconclusive: !r.ok && (r.code === TOO_MANY_CONNECTIONS || r.code?.startsWith("28") === true),
      inRecovery: r.ok && r.inRecovery,
      patroni: h.patroni,
    });
    if (r.ok) {
      h.lsn = r.lsn;
      h.lastOkAt = now;
      h.lastError = "";
      if (r.inRecovery) this.measureLag(h, r.replayBacklog, r.lagSeconds);
      else {
        h.lagBytes = 0;
        h.lagSeconds = 0;
      }
    } else {
      h.lastError = r.error;
    }
    log.debug("ha", "check", { database: this.name, host: h.key, ok: r.ok, rec: r.ok ? r.inRecovery : null, decision, primary });
    // Another primary answering while ours does: ask ours again now, so a primary that is really gone is noticed at once.
    if (decision === "conflict" && p !== null) p.due = true;
    this.apply(h, decision, r.ok ? "" : r.error || "check failed", now);
  }

  private measureLag(h: Host, backlog: number, seconds: number): void {
    const primaryLsn = this.primary?.lsn ?? null;
    const behind = primaryLsn !== null && h.lsn !== null ? Number(primaryLsn - h.lsn) : 0;
    h.lagBytes = Math.max(backlog, behind, 0);
    h.lagSeconds = seconds;
    const lim = this.lag;
    const over = lim.kind === "bytes" ? h.lagBytes > lim.bytes : lim.kind === "seconds" ? seconds > lim.seconds : false;
    if (over !== h.lagging) {
      h.lagging = over;
      const fields = { database: this.name, host: h.key, lag_bytes: h.lagBytes, lag_seconds: seconds, max_replica_lag: this.settings().max_replica_lag };
      if (over) log.warn("ha", "replica lags more than max_replica_lag: no reads until it catches up", fields);
      else {
        log.info("ha", "replica caught up: reads again", fields);
        this.notify();
      }
    }
  }

  private apply(h: Host, d: RoleDecision, error: string, now: number): void {
    const wasHealthy = h.healthy;
    const fields = { database: this.name, host: h.key };
    switch (d) {
      case "keep":
        // A check that proves nothing changes nothing; the primary answering as one is up (again, after a restart).
        if (error !== "") return;
        h.healthy = true;
        h.claim = "none";
        if (wasHealthy !== true) {
          this.upAgain(h, now);
          this.notify();
        }
        return;
      case "down": {
        h.healthy = false;
        if (h === this.primary && wasHealthy !== false) this.lostAt = now;
        if (wasHealthy !== false) {
          h.bannedUntil = now + this.settings().ban_timeout * 1000;
          h.bans++;
          const role = h === this.primary ? "primary" : h.role;
          log.warn("ha", `host down (${role}): no new servers there until a check succeeds; replicas get no reads for ban_timeout`, {
            ...fields,
            error,
            ban_timeout: this.settings().ban_timeout,
          });
        }
        return;
      }
      case "replica":
      case "demoted": {
        h.healthy = true;
        h.claim = "none";
        this.setRole(h, "replica");
        if (d === "demoted") {
          this.primary = null;
          this.lostAt = now;
          log.error("ha", "the primary is in recovery now (demoted): writes wait for a new primary (primary_wait_timeout)", fields);
          for (const l of this.listeners) l.primaryMoved(h);
        }
        if (wasHealthy !== true) this.upAgain(h, now);
        this.notify();
        return;
      }
      case "adopt": {
        h.healthy = true;
        h.claim = "none";
        const old = this.primary;
        this.primary = h;
        this.setRole(h, "primary");
        if (old !== null && old !== h) {
          this.failovers++;
          if (old.role === "primary") this.setRole(old, "unknown");
          log.warn("ha", "failover: the primary moved", { database: this.name, from: old.key, to: h.key });
          for (const l of this.listeners) l.primaryMoved(old);
        } else {
          log.info("ha", "primary found", fields);
        }
        this.notify();
        return;
      }
      case "conflict":
      case "unconfirmed": {
        h.healthy = true;
        if (h.claim !== d) {
          h.claim = d;
          if (d === "conflict") {
            log.error("ha", "split brain: two hosts claim to be primary; writes stay on the one pgbun had and the other gets nothing until one steps down", {
              database: this.name,
              primary: this.primary?.key ?? "",
              also_claims: h.key,
            });
          } else {
            log.warn("ha", "host is out of recovery but Patroni does not call it the leader: no writes until it does", { ...fields, patroni_url: h.patroniUrl });
          }
        } else if (d === "conflict") {
          // Loudly, at every check, until one of them steps down.
          log.error("ha", "split brain persists", { database: this.name, primary: this.primary?.key ?? "", also_claims: h.key });
        }
        return;
      }
    }
  }

  private upAgain(h: Host, now: number): void {
    const banned = h.role === "replica" && now < h.bannedUntil;
    log.info("ha", banned ? "host answers again; as a replica it gets reads once ban_timeout has passed" : "host up", {
      database: this.name,
      host: h.key,
      role: h.role,
    });
  }

  private setRole(h: Host, role: HostRole): void {
    if (h.role === role) return;
    log.info("ha", "host role changed", { database: this.name, host: h.key, from: h.role, to: role });
    h.role = role;
    h.roleChanges++;
  }

  private notify(): void {
    for (const l of this.listeners) l.changed();
  }

  /** A reload: the database's new entry. Hosts still listed keep what was learned; removed ones go; new ones are checked. */
  update(db: DatabaseConfig): Host[] {
    this.db = db;
    const list = db.hosts ?? [{ host: db.host, port: db.port }];
    const next: Host[] = [];
    list.forEach((a, i) => {
      const key = hostKey(a);
      const h = this.hosts.find((x) => x.key === key) ?? new Host(a, "");
      h.patroniUrl = db.patroni_url?.[i] ?? "";
      next.push(h);
    });
    const removed = this.hosts.filter((h) => !next.includes(h));
    for (const h of removed) {
      h.removed = true;
      log.info("ha", "host removed from the config: its servers close once their transactions end", { database: this.name, host: h.key });
      if (this.primary === h) this.primary = null;
    }
    this.hosts = next;
    return removed;
  }
}

/** Patroni's GET /primary: 200 on the leader only. */
async function askPatroni(url: string, timeoutMs: number): Promise<Host["patroni"]> {
  if (url === "") return "none";
  try {
    const res = await fetch(`${url.replace(/\/+$/, "")}/primary`, { signal: AbortSignal.timeout(timeoutMs) });
    await res.arrayBuffer().catch(() => {});
    return res.status === 200 ? "leader" : "not-leader";
  } catch {
    return "none";
  }
}
