// All pools, created on first login for a (database, user), and the client-side context built from the config.

import type { Config, DatabaseConfig, Settings } from "../config/schema.ts";
import { CancelKeys } from "../frontend/cancel-keys.ts";
import type { ClientConn } from "../frontend/client.ts";
import type { ClientContext, ClientPool, LoginTarget } from "../frontend/context.ts";
import { ADMIN_DATABASES } from "../admin/databases.ts";
import { log } from "../log.ts";
import { cancelRequest } from "../protocol/messages.ts";
import { Pool, type PoolSpec } from "./pool.ts";

export class Registry implements ClientContext {
  readonly pools = new Map<string, Pool>();
  readonly clients = new Set<ClientConn>();
  readonly cancelKeys: CancelKeys;
  readonly startedAt = Date.now();
  /** Databases refused to new clients (admin DISABLE). */
  readonly disabled = new Set<string>();
  /** The admin console for a user, or null when the user may not use it; set by the process that runs the console. */
  admin: ((user: string) => ClientPool | null) | null = null;

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

  lookup(database: string, user: string): LoginTarget {
    const u = this.config.users.get(user);
    if (ADMIN_DATABASES.has(database) && !this.config.databases.has(database)) {
      const adminPool = this.admin?.(user) ?? null;
      return {
        password: u?.password ?? this.forcedUserPassword(user),
        userKnown: u !== undefined || this.forcedUserPassword(user) !== undefined,
        pool: () => adminPool,
        // Details stay out of the message: whether the console exists for others is nobody's business.
        refusal: () => (adminPool === null ? ["42501", "permission denied"] : null),
      };
    }
    const db = this.config.databases.get(database);
    const password = u?.password ?? (db?.user === user ? db.password : undefined);
    const userKnown = u !== undefined || (db !== undefined && db.user === user);
    return {
      password,
      userKnown,
      pool: () => (db === undefined ? null : this.poolFor(db, user)),
      refusal: () =>
        this.disabled.has(database) ? ["57P03", `pgbun: database "${database}" is disabled (DISABLE on the admin console; ENABLE reverses it)`] : null,
    };
  }

  /** The password of a user known only as some database's forced user. */
  private forcedUserPassword(user: string): string | undefined {
    for (const d of this.config.databases.values()) if (d.user === user && d.password !== undefined) return d.password;
    return undefined;
  }

  specFor(db: DatabaseConfig, user: string): PoolSpec {
    const s = this.settings;
    const u = this.config.users.get(user);
    const serverUser = db.user ?? user;
    const serverPassword = db.user !== undefined ? db.password : u?.password;
    return {
      name: db.name,
      user,
      target: { host: db.host, port: db.port, database: db.dbname, user: serverUser, password: serverPassword },
      mode: u?.pool_mode ?? db.pool_mode ?? s.pool_mode,
      size: db.pool_size ?? s.default_pool_size,
      minSize: db.min_pool_size ?? s.min_pool_size,
    };
  }

  poolFor(db: DatabaseConfig, user: string): Pool {
    const key = `${db.name}\u0000${user}`;
    let pool = this.pools.get(key);
    if (pool === undefined) {
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
