// All pools, created on first login for a (database, user), and the client-side context built from the config.

import type { Config, DatabaseConfig, Settings } from "../config/schema.ts";
import { CancelKeys } from "../frontend/cancel-keys.ts";
import type { ClientConn } from "../frontend/client.ts";
import type { ClientContext, ClientPool, LoginFrom, LoginTarget } from "../frontend/context.ts";
import { ADMIN_DATABASES } from "../admin/databases.ts";
import { log } from "../log.ts";
import { cancelRequest } from "../protocol/messages.ts";
import { closeReason } from "../backend/close-reason.ts";
import type { Cluster } from "./cluster.ts";
import { replicaAlias, routerFor } from "./ha-registry.ts";
import { resolveLogin } from "./login-targets.ts";
import { Pool, type PoolSpec } from "./pool.ts";
import type { Router } from "./router.ts";

export class Registry implements ClientContext {
  readonly pools = new Map<string, Pool>();
  readonly clients = new Set<ClientConn>();
  readonly cancelKeys: CancelKeys;
  readonly startedAt = Date.now();
  /** Databases refused to new clients (admin DISABLE). */
  readonly disabled = new Set<string>();
  /** SIGTERM: a client whose transaction ends is let go instead of starting another. */
  shuttingDown = false;
  /** Databases made from the wildcard entry, by the name clients asked for; `from` is the entry they were made from. */
  readonly autodbs = new Map<string, { db: DatabaseConfig; from: DatabaseConfig; idleSince: number }>();
  /** Secrets auth_query found, by user: the pools of such users log in to servers with them. */
  readonly learned = new Map<string, string>();
  /** The admin console for a user, or null when the user may not use it; set by the process that runs the console. */
  admin: ((user: string) => ClientPool | null) | null = null;

  /** Databases with several hosts: each host's role, health and lag, by database name. */
  readonly clusters = new Map<string, Cluster>();
  /** Databases with several hosts: per (database, user), the pool clients see; it picks a host pool per checkout. */
  readonly routers = new Map<string, Router>();

  /** Other workers' cancel ports (index = worker number), when several processes share the listen port. */
  cancelPeers: Array<{ host: string; port: number } | null> = [];

  constructor(
    public config: Config,
    readonly worker = 0,
    readonly workerBits = 0,
  ) {
    this.cancelKeys = new CancelKeys(worker, workerBits);
  }

  get settings(): Settings {
    return this.config.settings;
  }

  lookup(database: string, user: string, from: LoginFrom): LoginTarget | Promise<LoginTarget> {
    return resolveLogin(this, database, user, from);
  }

  /** A user's secret from the config: [users.NAME] password, then auth_file. */
  staticSecret(user: string): string | undefined {
    return this.config.users.get(user)?.password ?? this.config.authFile?.get(user);
  }

  /** Listed in [users] or auth_file (trust admits only known users; others may still be found by auth_query). */
  staticallyKnown(user: string): boolean {
    return this.config.users.has(user) || (this.config.authFile?.has(user) ?? false);
  }

  /** After a reload: whether a pool's user may still log in (config, auth_file, a forced user, or found by auth_query). */
  userStillKnown(db: DatabaseConfig, user: string): boolean {
    if (this.staticallyKnown(user) || db.user === user) return true;
    return this.learned.has(user) && (db.auth_user ?? this.settings.auth_user) !== "";
  }

  /** The database a client's name means: its own entry, or one made from the wildcard [databases."*"] entry. */
  databaseFor(name: string, config = this.config): DatabaseConfig | undefined {
    const own = config.databases.get(name);
    if (own !== undefined || ADMIN_DATABASES.has(name)) return own;
    const replicas = replicaAlias(config.databases, name);
    if (replicas !== undefined) return replicas;
    const wild = config.databases.get("*");
    if (wild === undefined) return undefined;
    const made = this.autodbs.get(name);
    if (made !== undefined && made.from === wild) return made.db;
    // dbname "*" (the default) means the name the client asked for, as PgBouncer's fallback database does. It is
    // remembered only once a pool is made for it (poolFor), so names asked for by clients that never log in cost nothing.
    return { ...wild, name, dbname: wild.dbname === "*" ? name : wild.dbname };
  }

  /**
   * Frees the pools of wildcard-made databases nobody has used for autodb_idle_timeout (no clients, no busy servers):
   * their idle servers close and the database is forgotten until a client asks for it again.
   */
  sweepAutodbs(now = Date.now()): void {
    if (this.autodbs.size === 0) return;
    const limit = this.settings.autodb_idle_timeout * 1000;
    const byName = new Map<string, Array<[string, Pool]>>();
    for (const entry of this.pools) {
      if (!this.autodbs.has(entry[1].spec.name)) continue;
      const list = byName.get(entry[1].spec.name);
      if (list === undefined) byName.set(entry[1].spec.name, [entry]);
      else list.push(entry);
    }
    for (const [name, a] of this.autodbs) {
      const pools = byName.get(name) ?? [];
      if (pools.some(([, p]) => p.clients.size > 0 || p.servers.size > p.idle.length)) {
        a.idleSince = now;
        continue;
      }
      if (limit <= 0 || now - a.idleSince < limit) continue;
      for (const [key, p] of pools) {
        for (const s of [...p.idle]) s.close(closeReason("server_idle_timeout", "autodb_idle_timeout: the wildcard database was unused"));
        // Its LISTEN connection, if one was ever opened, closes with it.
        p.draining = true;
        p.tickHub(now);
        this.pools.delete(key);
      }
      this.autodbs.delete(name);
      log.info("pool", "wildcard database freed after autodb_idle_timeout", { database: name });
    }
  }

  specFor(db: DatabaseConfig, user: string): PoolSpec {
    const s = this.settings;
    const u = this.config.users.get(user);
    const serverUser = db.user ?? user;
    // A forced user without a password, and every client user, log in with the secret pgbun holds for them.
    const serverPassword = db.user !== undefined ? (db.password ?? this.staticSecret(db.user)) : (this.staticSecret(user) ?? this.learned.get(user));
    return {
      name: db.name,
      user,
      target: { host: db.host, port: db.port, database: db.dbname, user: serverUser, password: serverPassword },
      mode: u?.pool_mode ?? db.pool_mode ?? s.pool_mode,
      size: db.pool_size ?? s.default_pool_size,
      minSize: db.min_pool_size ?? s.min_pool_size,
    };
  }

  /** The pool clients of (database, user) are served by: a router over the hosts' pools when the database has several. */
  clientPoolFor(db: DatabaseConfig, user: string): ClientPool {
    return db.hosts !== undefined ? routerFor(this, db, user) : this.poolFor(db, user);
  }

  poolFor(db: DatabaseConfig, user: string): Pool {
    const key = `${db.name}\u0000${user}`;
    let pool = this.pools.get(key);
    // auth_query may have found a new secret since the pool was made: new servers log in with it.
    const learned = db.user === undefined && !this.staticallyKnown(user) ? this.learned.get(user) : undefined;
    if (pool !== undefined && learned !== undefined && pool.spec.target.password !== learned) {
      pool.spec = { ...pool.spec, target: { ...pool.spec.target, password: learned } };
    }
    if (pool === undefined) {
      const wild = this.config.databases.get("*");
      if (wild !== undefined && !this.config.databases.has(db.name) && this.autodbs.get(db.name)?.db !== db) {
        this.autodbs.set(db.name, { db, from: wild, idleSince: Date.now() });
      }
      pool = new Pool(this.specFor(db, user), () => this.settings);
      this.pools.set(key, pool);
      log.debug("pool", "created", { pool: db.name, user, mode: pool.mode, size: pool.spec.size });
    }
    return pool;
  }

  cancel(pid: number, secret: number): void {
    // With SO_REUSEPORT the cancel may land on any worker: the pid says which one owns the client.
    const owner = CancelKeys.workerOf(pid, this.workerBits);
    const peer = owner !== this.worker ? this.cancelPeers[owner] : null;
    if (peer) {
      forwardCancel(peer.host, peer.port, pid, secret);
      return;
    }
    if (!this.cancelKeys.cancel(pid, secret)) log.debug("client", "cancel request for an unknown key dropped", { pid });
  }

  clientOpened(c: ClientConn): boolean {
    this.clients.add(c);
    return this.clients.size <= this.settings.max_client_conn;
  }

  clientClosed(c: ClientConn): void {
    this.clients.delete(c);
  }
}

function forwardCancel(host: string, port: number, pid: number, secret: number): void {
  Bun.connect({
    hostname: host,
    port,
    socket: {
      open(s) {
        s.write(cancelRequest(pid, secret));
        s.end();
      },
      data() {},
    },
  }).catch((err: Error) => log.warn("client", "could not forward a cancel request to its worker", { pid, error: err.message }));
}
