// The system under attack: a throwaway PostgreSQL, pgbun in front of it (restartable), optionally a fault proxy between them.

import postgres from "postgres";
import { FaultProxy } from "../harness/fault-proxy.ts";
import { REPO_ROOT, startPgbun, type PgbunProcess } from "../harness/pgbun.ts";
import { startPostgres, type PgInstance } from "../harness/postgres.ts";

export interface TargetOptions {
  poolMode?: "session" | "transaction" | "statement";
  poolSize?: number;
  maxClientConn?: number;
  /** More pgbun flags, after the ones above. */
  pgbunArgs?: string[];
  /** Put a FaultProxy between pgbun and PostgreSQL. */
  proxy?: boolean;
  /** PostgreSQL's max_connections; default 200. */
  maxConnections?: number;
  /** Run as the app role in database app once PostgreSQL is up (tables the workload needs). */
  setupSql?: string;
  /** The checkout whose src/main.ts runs; default $PGBUN_ROOT or this repository. */
  pgbunRoot?: string;
}

export const APP = { user: "app", password: "apppass", db: "app" } as const;

export class Target {
  pgbun!: PgbunProcess;
  proxy: FaultProxy | null = null;
  /** A superuser connection straight to PostgreSQL, for checks and pg_terminate_backend. */
  admin!: postgres.Sql;
  restarts = 0;

  private constructor(
    readonly pg: PgInstance,
    private readonly opts: TargetOptions,
  ) {}

  static async start(opts: TargetOptions = {}): Promise<Target> {
    const pg = await startPostgres({ maxConnections: opts.maxConnections ?? 200 });
    const t = new Target(pg, opts);
    try {
      if (opts.setupSql) await pg.psql(opts.setupSql, { user: APP.user, db: APP.db });
      t.admin = postgres(pg.url("postgres", "postgres", APP.db), { max: 2, onnotice: () => {}, idle_timeout: 0 });
      if (opts.proxy) t.proxy = FaultProxy.start({ host: pg.host, port: pg.port });
      await t.startPgbun();
      return t;
    } catch (err) {
      await t.stop();
      throw err;
    }
  }

  get port(): number {
    return this.pgbun.port;
  }

  get pid(): number {
    return this.pgbun.proc.pid;
  }

  url(): string {
    return this.pgbun.url(APP.user, APP.password, APP.db);
  }

  alive(): boolean {
    return this.pgbun.proc.exitCode === null && this.pgbun.proc.signalCode === null;
  }

  /** How pgbun ended, when it has: "exit 1", "SIGSEGV". */
  exitReason(): string | null {
    const p = this.pgbun.proc;
    return p.signalCode !== null ? String(p.signalCode) : p.exitCode !== null ? `exit ${p.exitCode}` : null;
  }

  /** The last lines pgbun printed (a crash's stack trace is there). */
  outputTail(lines = 30): string {
    return this.pgbun.output().trimEnd().split("\n").slice(-lines).join("\n");
  }

  /**
   * Backends of pgbun's that are not idle once no client is left: a transaction or query pgbun never ended.
   * Null when all are idle within `graceMs`, else a description of each.
   */
  async strandedServers(graceMs = 3000): Promise<string | null> {
    const deadline = Date.now() + graceMs;
    for (;;) {
      const rows = await this.admin`
        SELECT pid, state, left(query, 80) AS query FROM pg_stat_activity
        WHERE usename = ${APP.user} AND backend_type = 'client backend' AND state <> 'idle'`;
      if (rows.length === 0) return null;
      if (Date.now() > deadline) return rows.map((r) => `${r.pid} ${r.state}: ${r.query}`).join("; ");
      await Bun.sleep(100);
    }
  }

  /** A fresh pgbun (on a new port) after a crash or hang; the old one is killed if still running. */
  async restart(): Promise<void> {
    this.restarts++;
    if (this.alive()) await this.pgbun.stop("SIGKILL");
    await this.startPgbun();
  }

  async stop(): Promise<void> {
    if (this.pgbun && this.alive()) await this.pgbun.stop("SIGKILL");
    await this.admin?.end({ timeout: 1 }).catch(() => {});
    this.proxy?.stop();
    await this.pg.stop("immediate").catch(() => {});
  }

  private async startPgbun(): Promise<void> {
    const o = this.opts;
    const upstream = this.proxy
      ? `postgres://${APP.user}:${APP.password}@127.0.0.1:${this.proxy.port}/${APP.db}`
      : this.pg.url(APP.user, APP.password, APP.db);
    const args = [
      "--upstream",
      upstream,
      "--pool-mode",
      o.poolMode ?? "transaction",
      "--pool-size",
      String(o.poolSize ?? 10),
      "--max-client-conn",
      String(o.maxClientConn ?? 2000),
      // Long runs keep pgbun's whole output in memory (the harness collects it): only warnings and errors.
      "--log-level",
      "warn",
      "--log-connections=false",
      "--log-disconnections=false",
      ...(o.pgbunArgs ?? []),
    ];
    this.pgbun = await startPgbun(args, { cwd: o.pgbunRoot ?? process.env.PGBUN_ROOT ?? REPO_ROOT });
  }
}
