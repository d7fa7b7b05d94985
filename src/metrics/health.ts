// Health per database, kept in memory: from the pools' own logins and login failures, and a background login when they are quiet.

import { oneShotSession } from "../backend/one-shot-session.ts";
import type { ServerTarget } from "../backend/server-types.ts";
import type { DatabaseConfig } from "../config/schema.ts";
import { log } from "../log.ts";
import type { Pool } from "../pool/pool.ts";
import type { Registry } from "../pool/registry.ts";

/** A background login runs for a server target when no pool has logged in to it for this long; at most one at a time. */
export const CHECK_INTERVAL_MS = 2000;
/** A database is "starting" (503) until its first login (a pool's or the check's) succeeds or fails, at most this long. */
export const START_GRACE_MS = 5000;
const CHECK_TIMEOUT_MS = 3000;
const TICK_MS = 250;
/** PostgreSQL's too_many_connections: while the pools hold live servers, the pools themselves are what fills the server. */
const TOO_MANY_CONNECTIONS = "53300";

export type HealthStatus = "starting" | "up" | "down";

/** One login outcome, the pools' or the check's. */
interface Outcome {
  ok: boolean;
  at: number;
  error: string | null;
  code: string | null;
  source: "pool" | "check";
}

type LoginResult = Omit<Outcome, "at" | "source">;

interface CheckState {
  last: Outcome | null;
  running: boolean;
}

export interface UpstreamHealth {
  database: string;
  host: string;
  port: number;
  status: HealthStatus;
  /** Why it is not up. */
  error: string | null;
  /** Where the latest outcome came from, and when (ISO). */
  source: "pool" | "check" | null;
  checked_at: string | null;
  live_servers: number;
  /** The pools' latest login error, even when a later login succeeded. */
  last_error: string | null;
  /** A database with several hosts: each host as its latest role check saw it. */
  hosts?: HostHealth[];
}

export interface HostHealth {
  host: string;
  port: number;
  role: string;
  state: string;
  lag_bytes: number | null;
  lag_seconds: number | null;
  error: string | null;
}

/** Logs in to the server as a server connection does (startup, authentication) and leaves at ReadyForQuery. */
export async function loginCheck(target: ServerTarget, timeoutMs = CHECK_TIMEOUT_MS): Promise<LoginResult> {
  const where = `${target.host}:${target.port}`;
  const r = await oneShotSession(target, "pgbun health check", timeoutMs, null);
  if (r.ok) return { ok: true, error: null, code: null };
  if (r.stage === "connect" || r.stage === "auth") {
    return { ok: false, error: r.message.startsWith("cannot connect") ? r.message : `${where}: ${r.message}`, code: null };
  }
  return { ok: false, error: `login to ${where} as "${target.user}" failed: ${r.message} (SQLSTATE ${r.code ?? "?"})`, code: r.code };
}

export class HealthMonitor {
  /** Check state per server target (databases that point at the same server and role share one check). */
  private readonly checks = new Map<string, CheckState>();
  private readonly startedAt = Date.now();
  /** Last status logged per database, to log changes only. */
  private readonly logged = new Map<string, HealthStatus>();

  constructor(private readonly registry: Registry) {}

  /** Starts the periodic tick; returns its stop function. */
  start(): () => void {
    this.tick();
    const timer = setInterval(() => this.tick(), TICK_MS);
    timer.unref();
    return () => clearInterval(timer);
  }

  /** Starts the checks that are due, and logs status changes. */
  tick(now = Date.now()): void {
    const keys = new Set<string>();
    const byDb = this.poolsByDatabase();
    for (const db of this.registry.config.databases.values()) {
      const pools = byDb.get(db.name) ?? [];
      // The hosts of a database with several are checked by its cluster (role checks), not here.
      const target = db.hosts === undefined ? this.targetFor(db, pools) : null;
      if (target !== null) {
        const key = targetKey(target);
        keys.add(key);
        const st = this.checks.get(key) ?? { last: null, running: false };
        this.checks.set(key, st);
        const poolLogin = Math.max(0, ...pools.map((p) => p.lastLoginAt));
        const latest = Math.max(poolLogin, st.last?.at ?? 0);
        if (!st.running && now - latest >= CHECK_INTERVAL_MS) void this.runCheck(st, target);
      }
      const u = this.upstream(db, pools, now);
      if (this.logged.get(db.name) !== u.status) {
        if (u.status === "down") log.warn("health", "database down: pgbun cannot log in to its server", { database: db.name, error: u.error ?? "" });
        else if (u.status === "up" && this.logged.get(db.name) === "down") log.info("health", "database up", { database: db.name });
        this.logged.set(db.name, u.status);
      }
    }
    // Targets no longer configured (reload) are forgotten; a check still running finishes into the void.
    for (const key of this.checks.keys()) if (!keys.has(key)) this.checks.delete(key);
    for (const name of this.logged.keys()) if (!this.registry.config.databases.has(name)) this.logged.delete(name);
  }

  private async runCheck(st: CheckState, target: ServerTarget): Promise<void> {
    st.running = true;
    const r = await loginCheck(target);
    st.running = false;
    st.last = { ...r, at: Date.now(), source: "check" };
  }

  /** What every configured database looks like now, from memory only. */
  report(now = Date.now()): UpstreamHealth[] {
    const byDb = this.poolsByDatabase();
    return [...this.registry.config.databases.values()].map((db) => this.upstream(db, byDb.get(db.name) ?? [], now));
  }

  private upstream(db: DatabaseConfig, pools: Pool[], now: number): UpstreamHealth {
    if (db.hosts !== undefined) return this.clusterHealth(db, pools, now);
    const target = this.targetFor(db, pools);
    let latest: Outcome | null = target === null ? null : (this.checks.get(targetKey(target))?.last ?? null);
    let lastError: string | null = null;
    let lastErrorAt = 0;
    let live = 0;
    for (const p of pools) {
      live += p.servers.size - p.connecting.size;
      if (p.lastLoginAt > (latest?.at ?? 0)) latest = { ok: true, at: p.lastLoginAt, error: null, code: null, source: "pool" };
      if (p.lastErrorAt > 0 && p.lastErrorAt > lastErrorAt) {
        lastErrorAt = p.lastErrorAt;
        lastError = p.lastError || null;
      }
    }
    // A pool's failure counts only when it is newer than every success seen.
    if (lastErrorAt > (latest?.at ?? 0)) latest = { ok: false, at: lastErrorAt, error: lastError ?? "server login failed", code: null, source: "pool" };
    let status: HealthStatus;
    let error: string | null = null;
    if (latest === null) {
      if (target === null) status = "up"; // nothing to log in as, and nothing has failed
      else if (now - this.startedAt < START_GRACE_MS) status = "starting";
      else {
        status = "down";
        error = `no login to the server completed within ${START_GRACE_MS / 1000} s of start`;
      }
    } else if (latest.ok || (latest.code === TOO_MANY_CONNECTIONS && live > 0)) {
      status = "up";
    } else {
      status = "down";
      error = latest.error;
    }
    return {
      database: db.name,
      host: db.host,
      port: db.port,
      status,
      error,
      source: latest?.source ?? null,
      checked_at: latest === null ? null : new Date(latest.at).toISOString(),
      live_servers: live,
      last_error: lastError,
    };
  }

  /** A database with several hosts is up while a host can take its clients: the primary, or for role = replica a replica. */
  private clusterHealth(db: DatabaseConfig, pools: Pool[], now: number): UpstreamHealth {
    const c = this.registry.clusters.get(db.name);
    const hosts: HostHealth[] = (c?.hosts ?? []).map((h) => ({
      host: h.address.host,
      port: h.address.port,
      role: h.role,
      state: h.state(now),
      lag_bytes: h.lagBytes,
      lag_seconds: h.lagSeconds,
      error: h.lastError || null,
    }));
    const primary = c?.writable() ?? null;
    const readable = c !== undefined && (c.readable(now).length > 0 || (primary !== null && db.primary_reads !== "false"));
    const ok = db.role === "replica" ? readable : primary !== null;
    const checked = c !== undefined && c.hosts.some((h) => h.healthy !== null);
    let status: HealthStatus = ok ? "up" : "down";
    let error: string | null = null;
    if (!ok && !checked && now - this.startedAt < START_GRACE_MS) status = "starting";
    else if (!ok) {
      const what = db.role === "replica" ? "no host can take reads" : "no primary";
      error = `${what}: ${hosts.map((h) => `${h.host}:${h.port} ${h.role} ${h.state}${h.error ? ` (${h.error})` : ""}`).join("; ")}`;
    }
    const last = Math.max(0, ...(c?.hosts ?? []).map((h) => h.lastCheckAt));
    let live = 0;
    for (const p of pools) live += p.servers.size - p.connecting.size;
    return {
      database: db.name,
      host: primary?.address.host ?? db.host,
      port: primary?.address.port ?? db.port,
      status,
      error,
      source: last === 0 ? null : "check",
      checked_at: last === 0 ? null : new Date(last).toISOString(),
      live_servers: live,
      last_error: c?.hosts.map((h) => h.lastError).find((e) => e !== "") ?? null,
      hosts,
    };
  }

  /** The pools of each database, one pass over them all. */
  private poolsByDatabase(): Map<string, Pool[]> {
    const out = new Map<string, Pool[]>();
    for (const p of this.registry.pools.values()) {
      if (p.draining) continue;
      const list = out.get(p.spec.name);
      if (list === undefined) out.set(p.spec.name, [p]);
      else list.push(p);
    }
    return out;
  }

  /**
   * Whom the check logs in as: the database's forced user, else the user of the pool that logged in last,
   * else the first configured user; null when there is nobody.
   */
  private targetFor(db: DatabaseConfig, pools: Pool[]): ServerTarget | null {
    const reg = this.registry;
    // The wildcard entry names no database of its own to log in to; the databases made from it are checked by their pools.
    if (db.name === "*" && db.dbname === "*") return null;
    if (db.user !== undefined) return reg.specFor(db, db.user).target;
    let best: Pool | null = null;
    for (const p of pools) if (best === null || p.lastLoginAt > best.lastLoginAt) best = p;
    if (best !== null) return reg.specFor(db, best.spec.user).target;
    const first = reg.config.users.keys().next();
    return first.done ? null : reg.specFor(db, first.value).target;
  }
}

function targetKey(t: ServerTarget): string {
  return JSON.stringify([t.host, t.port, t.database, t.user, t.password ?? null]);
}
