// The running process: listener, janitor, HTTP endpoint and admin console, reload and the two kinds of shutdown.

import type { Server, TCPSocketListener } from "bun";
import { AdminPool, type Controller } from "./admin/console.ts";
import { formatConfigError, parseCli } from "./cli.ts";
import { ConfigError } from "./config/errors.ts";
import type { Config } from "./config/schema.ts";
import type { ClientConn } from "./frontend/client.ts";
import { listen, listenUnix } from "./frontend/listener.ts";
import { configureLog, log } from "./log.ts";
import { configureTls } from "./net/tls.ts";
import { startHttp, type HealthSource } from "./metrics/http.ts";
import type { StreamData } from "./notify/http-stream.ts";
import { StatsWindow } from "./metrics/stats-window.ts";
import { reloadRouters } from "./pool/ha-registry.ts";
import { startJanitor } from "./pool/janitor.ts";
import type { Pool } from "./pool/pool.ts";
import { Registry } from "./pool/registry.ts";
import type { ServerTarget } from "./backend/server.ts";
import { closeReason } from "./backend/close-reason.ts";
import { shareOf, type WorkerRole } from "./workers.ts";

export class Lifecycle implements Controller, HealthSource {
  readonly registry: Registry;
  readonly statsWindow: StatsWindow;
  private listener: TCPSocketListener<ClientConn> | null = null;
  /** unix_socket_dir's socket, beside the TCP listener. */
  private unix: { path: string; stop(closeActive: boolean): void } | null = null;
  private http: Server<StreamData> | null = null;
  private timers: Array<() => void> = [];
  private stopping = false;
  /** SIGTERM: idle clients are asked to leave; SHUTDOWN WAIT_FOR_CLIENTS lets them stay until they go on their own. */
  private dismissIdle = false;

  constructor(
    config: Config,
    private readonly argv: string[],
    private readonly cwd: string,
    private readonly role: WorkerRole | null = null,
  ) {
    this.registry = new Registry(role ? shareOf(config, role.count) : config, role?.index ?? 0, role?.bits ?? 0);
    this.statsWindow = new StatsWindow(this.registry);
    const s = config.settings;
    this.registry.admin = (user) => {
      const st = this.registry.settings;
      if (st.admin_users.includes(user)) return new AdminPool(this, false);
      if (st.stats_users.includes(user)) return new AdminPool(this, true);
      return null;
    };
    configureLog({ level: s.log_level, format: s.log_format });
    configureTls(config.tls);
  }

  /** Starts accepting; returns the bound port. Throws when the address is taken. */
  start(): number {
    const s = this.registry.settings;
    this.listener = listen(this.registry, s.listen.host, s.listen.port, this.role !== null);
    if (this.role !== null) this.joinWorkers(this.role);
    this.timers.push(startJanitor(this.registry, (c) => this.sweep(c)));
    const autodbs = setInterval(() => this.registry.sweepAutodbs(), 1000);
    this.timers.push(() => clearInterval(autodbs));
    const period = setInterval(() => this.statsWindow.roll(), Math.max(1, s.stats_period) * 1000);
    this.timers.push(() => clearInterval(period));
    if (s.stats_listen) this.http = startHttp(this, s.stats_listen.host, s.stats_listen.port);
    return this.listener.port;
  }

  /**
   * unix_socket_dir: also listen on DIR/.s.PGSQL.PORT, PORT being the TCP listener's (with workers, the first one
   * listens there). Returns the socket's path, or null when unix_socket_dir is empty.
   */
  async listenUnix(port: number): Promise<string | null> {
    const s = this.registry.settings;
    if (s.unix_socket_dir === "" || (this.role !== null && this.role.index !== 0)) return null;
    this.unix = await listenUnix(this.registry, s.unix_socket_dir, port, parseInt(s.unix_socket_mode, 8));
    return this.unix.path;
  }

  /** A worker takes cancel requests forwarded by its siblings on a private port, and learns theirs from the supervisor. */
  private joinWorkers(role: WorkerRole): void {
    const cancels = listen(this.registry, "127.0.0.1", 0);
    this.timers.push(() => cancels.stop(true));
    process.on("message", (m: unknown) => {
      const msg = m as { type?: string; cancelPorts?: Array<number | null> };
      if (msg.type === "peers" && msg.cancelPorts) {
        this.registry.cancelPeers = msg.cancelPorts.map((p) => (p === null ? null : { host: "127.0.0.1", port: p }));
      }
    });
    // The supervisor is gone (killed, crashed): a worker must not outlive it and hold the port unsupervised.
    process.on("disconnect", () => {
      log.warn("main", "the supervising pgbun process is gone; this worker exits", { worker: role.index });
      this.exit(1);
    });
    process.send?.({ type: "ready", index: role.index, cancelPort: cancels.port });
  }

  get httpPort(): number | null {
    return this.http?.port ?? null;
  }

  listening(): boolean {
    return this.listener !== null && !this.stopping;
  }

  /** Per tick: clients of removed pools, and during a graceful shutdown every client, leave once between transactions. */
  private sweep(c: ClientConn): void {
    if (c.state !== "idle") return;
    const pool = c.pool as Pool | null;
    if (this.dismissIdle) c.fatal("57P01", "pgbun is shutting down");
    else if (pool?.draining) c.fatal("57P01", `pgbun: database "${pool.spec.name}" was removed from the config`);
  }

  reload(): string | null {
    let next: Config;
    try {
      const action = parseCli(this.argv, process.env, this.cwd);
      if (action.kind !== "run") return "the command line asks for help or version";
      next = action.config;
    } catch (err) {
      const message = err instanceof ConfigError ? formatConfigError(err) : (err as Error).message;
      log.error("main", "reload refused; the running config stays", { error: message });
      return message;
    }
    this.apply(this.role ? shareOf(next, this.role.count) : next);
    log.info("main", "config reloaded", { databases: [...next.databases.keys()].join(","), users: next.users.size });
    return null;
  }

  private apply(next: Config): void {
    const reg = this.registry;
    const before = reg.settings;
    const serverTlsBefore = JSON.stringify(reg.config.tls?.server ?? null);
    reg.config = next;
    configureLog({ level: next.settings.log_level, format: next.settings.log_format });
    // Certificate rotation: the files were re-read with the config (a bad one refused the reload); new handshakes use them.
    configureTls(next.tls);
    if (next.tls?.client) log.info("main", "client TLS files loaded", { client_tls_sslmode: next.tls.client.mode, files: next.tls.client.files });
    // Servers logged in under other server_tls_* settings (or files) are replaced as they become idle, as RECONNECT does.
    if (serverTlsBefore !== JSON.stringify(next.tls?.server ?? null)) {
      log.info("main", "server_tls_* changed: servers are replaced as they become idle", { server_tls_sslmode: next.settings.server_tls_sslmode });
      for (const pool of reg.pools.values()) pool.retireAll();
    }
    if (before.listen.host !== next.settings.listen.host || before.listen.port !== next.settings.listen.port) {
      log.warn("main", "listen changed in the config: it applies at the next restart");
    }
    if (before.unix_socket_dir !== next.settings.unix_socket_dir || before.unix_socket_mode !== next.settings.unix_socket_mode) {
      log.warn("main", "unix_socket_dir or unix_socket_mode changed in the config: it applies at the next restart");
    }
    for (const [key, pool] of reg.pools) {
      // A host pool of a database with several hosts follows the config through its router (reloadRouters below).
      if (pool.spec.host !== undefined) continue;
      const db = reg.databaseFor(pool.spec.name);
      if (db === undefined || db.hosts !== undefined || !reg.userStillKnown(db, pool.spec.user)) {
        pool.draining = true;
        pool.retireAll();
        if (pool.clients.size === 0 && pool.servers.size === 0) reg.pools.delete(key);
        continue;
      }
      const spec = reg.specFor(db, pool.spec.user);
      if (!sameTarget(pool.spec.target, spec.target)) pool.retireAll();
      pool.spec = spec;
      pool.grow();
    }
    reloadRouters(reg);
  }

  private poolsOf(db: string | null): Pool[] {
    return [...this.registry.pools.values()].filter((p) => db === null || p.spec.name === db);
  }

  async pause(db: string | null): Promise<void> {
    const pools = this.poolsOf(db);
    for (const p of pools) p.paused = true;
    // Transactions in flight finish; then the servers are closed, as PgBouncer's PAUSE does.
    while (pools.some((p) => p.activeServers > 0)) await Bun.sleep(20);
    for (const p of pools) for (const s of [...p.idle]) s.close(closeReason("admin", "PAUSE"));
  }

  resume(db: string | null): void {
    for (const p of this.poolsOf(db)) p.resume();
  }

  reconnect(db: string | null): void {
    for (const p of this.poolsOf(db)) p.retireAll();
  }

  kill(db: string): void {
    for (const p of this.poolsOf(db)) {
      p.paused = true;
      for (const c of [...p.clients]) c.fatal("57P01", `pgbun: database "${db}" was killed on the admin console (KILL)`);
      for (const s of [...p.servers]) s.close(closeReason("admin", "KILL"));
    }
  }

  shutdown(waitForClients: boolean): void {
    if (!waitForClients) {
      log.info("main", "SHUTDOWN from the admin console");
      setTimeout(() => this.exit(0), 20);
      return;
    }
    this.listener?.stop(false);
    this.unix?.stop(false);
    this.stopping = true;
    log.info("main", "SHUTDOWN WAIT_FOR_CLIENTS: no new clients; exiting when the last one leaves");
    const check = setInterval(() => {
      if (this.registry.clients.size === 0) this.exit(0);
    }, 50);
    this.timers.push(() => clearInterval(check));
  }

  /** SIGTERM: stop accepting, let open transactions finish for up to shutdown_timeout, then close what remains. */
  gracefulStop(): void {
    if (this.stopping) return;
    this.stopping = true;
    this.dismissIdle = true;
    this.registry.shuttingDown = true;
    this.listener?.stop(false);
    this.unix?.stop(false);
    const limit = this.registry.settings.shutdown_timeout * 1000;
    const started = Date.now();
    log.info("main", "SIGTERM: no new clients; waiting for transactions in flight", { shutdown_timeout: this.registry.settings.shutdown_timeout });
    const check = setInterval(() => {
      if (this.registry.clients.size === 0) this.exit(0);
      else if (Date.now() - started > limit) {
        for (const c of [...this.registry.clients]) c.fatal("57P01", "pgbun is shutting down (shutdown_timeout reached)");
        setTimeout(() => this.exit(0), 50);
      }
    }, 50);
    this.timers.push(() => clearInterval(check));
  }

  exit(code: number): never {
    for (const stop of this.timers) stop();
    this.listener?.stop(true);
    this.unix?.stop(true);
    this.http?.stop(true);
    process.exit(code);
  }
}

function sameTarget(a: ServerTarget, b: ServerTarget): boolean {
  return a.host === b.host && a.port === b.port && a.database === b.database && a.user === b.user && a.password === b.password;
}
