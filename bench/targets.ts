// The poolers under test: PgBouncer from a temporary ini file and pgbun from its command line, both as child processes.

import { chownSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { writeConfig } from "../tests/harness/config-file.ts";
import { startPgbun, type PgbunProcess } from "../tests/harness/pgbun.ts";
import { freePort } from "../tests/harness/postgres.ts";
import { undoIfKilled } from "../tests/harness/watchdog.ts";

export interface PoolerSettings {
  poolSize: number;
  maxClientConn: number;
  /** How clients log in to the pooler; PostgreSQL asks the poolers for the same. */
  auth: "md5" | "scram-sha-256";
}

export interface RunningPooler {
  name: string;
  port: number;
  /** The process whose RSS is the pooler's: pgbouncer itself, or the bun process running pgbun. */
  pid: number;
  stop(): Promise<void>;
  alive(): boolean;
  /** The pooler's own log so far, for a failure report. */
  logTail(): string;
}

/** How a pooler reaches PostgreSQL: TCP on 127.0.0.1:port (default), or the Unix socket .s.PGSQL.port in socketDir. */
export interface Upstream {
  /** The folder of PostgreSQL's Unix socket (unix_socket_directories); absent: TCP on 127.0.0.1. */
  socketDir?: string;
}

/** pgbun's own settings beyond PgBouncer's, for the extra targets. */
export interface PgbunExtras extends Upstream {
  /** prepare_unnamed = true (--prepare-unnamed). */
  prepareUnnamed?: boolean;
}

/** A certificate and key for client TLS (prefer: each client chooses TLS or plain text). */
export interface ClientTlsFiles {
  cert: string;
  key: string;
}

const asRoot = process.getuid?.() === 0;
const SERVER_OS_USER = "postgres";

export function findPgbouncer(): string | null {
  return Bun.which("pgbouncer") ?? (existsSync("/usr/sbin/pgbouncer") ? "/usr/sbin/pgbouncer" : null);
}

/** "1.18.0" from the first line of pgbouncer --version. */
export function pgbouncerVersion(bin: string): string {
  const out = Bun.spawnSync([bin, "--version"], { stdout: "pipe", stderr: "pipe" }).stdout.toString();
  return out.match(/PgBouncer (\d+\.\d+(?:\.\d+)?)/)?.[1] ?? "unknown";
}

/** Protocol-level prepared statements in transaction mode arrived in PgBouncer 1.21 (max_prepared_statements). */
export function pgbouncerSupportsPrepared(version: string): boolean {
  const [major = 0, minor = 0] = version.split(".").map(Number);
  return major > 1 || (major === 1 && minor >= 21);
}

export function readRssKiB(pid: number): number | null {
  try {
    const m = readFileSync(`/proc/${pid}/status`, "utf8").match(/^VmRSS:\s+(\d+) kB/m);
    return m ? Number(m[1]) : null;
  } catch {
    return null;
  }
}

async function canConnect(port: number): Promise<boolean> {
  try {
    const s = await Bun.connect({ hostname: "127.0.0.1", port, socket: { data() {} } });
    s.end();
    return true;
  } catch {
    return false;
  }
}

async function waitForPort(port: number, proc: Bun.Subprocess, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (proc.exitCode !== null || proc.signalCode !== null) throw new Error(`exited (${proc.exitCode ?? proc.signalCode}) before listening`);
    if (await canConnect(port)) return;
    await Bun.sleep(100);
  }
  throw new Error(`not listening on 127.0.0.1:${port} after ${timeoutMs} ms`);
}

/**
 * PgBouncer in transaction mode in front of pgPort, run as the postgres system user when we are root.
 * The userlist holds PostgreSQL's own secret from pg_authid (an md5 hash or a SCRAM verifier), as in production:
 * PgBouncer logs into the server with the hash, or with the SCRAM keys its client proved.
 */
export async function startPgbouncer(bin: string, pgPort: number, secret: string, s: PoolerSettings, tls?: ClientTlsFiles, upstream: Upstream = {}): Promise<RunningPooler> {
  const dir = mkdtempSync(join(tmpdir(), "pgbun-bench-pgbouncer-"));
  const port = await freePort();
  // Copied beside the ini, so that the postgres user PgBouncer runs as can read them.
  if (tls) for (const [from, to] of [[tls.cert, "server.crt"], [tls.key, "server.key"]] as const) writeFileSync(join(dir, to), readFileSync(from), { mode: 0o600 });
  const tlsIni = tls ? `client_tls_sslmode = prefer\nclient_tls_cert_file = ${join(dir, "server.crt")}\nclient_tls_key_file = ${join(dir, "server.key")}\n` : "";
  const ini = `[databases]
postgres = host=${upstream.socketDir ?? "127.0.0.1"} port=${pgPort} dbname=postgres

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = ${port}
unix_socket_dir =
auth_type = ${s.auth}
auth_file = ${join(dir, "userlist.txt")}
pool_mode = transaction
default_pool_size = ${s.poolSize}
max_client_conn = ${s.maxClientConn}
logfile = ${join(dir, "pgbouncer.log")}
log_connections = 0
log_disconnections = 0
ignore_startup_parameters = extra_float_digits
${tlsIni}`;
  writeFileSync(join(dir, "pgbouncer.ini"), ini);
  writeFileSync(join(dir, "userlist.txt"), `"postgres" "${secret}"\n`, { mode: 0o600 });
  if (asRoot) {
    const uid = Number(Bun.spawnSync(["id", "-u", SERVER_OS_USER]).stdout.toString().trim());
    const gid = Number(Bun.spawnSync(["id", "-g", SERVER_OS_USER]).stdout.toString().trim());
    for (const f of ["", "pgbouncer.ini", "userlist.txt", ...(tls ? ["server.crt", "server.key"] : [])]) chownSync(join(dir, f), uid, gid);
  }
  // setpriv execs pgbouncer in place (runuser forks), so the child's pid is pgbouncer's and its RSS is the pooler's.
  const cmd = asRoot ? ["setpriv", `--reuid=${SERVER_OS_USER}`, `--regid=${SERVER_OS_USER}`, "--init-groups", "--", bin, "-q", join(dir, "pgbouncer.ini")] : [bin, "-q", join(dir, "pgbouncer.ini")];
  const proc = Bun.spawn(cmd, { cwd: "/", stdin: "ignore", stdout: "ignore", stderr: "ignore" });
  const forget = undoIfKilled({ kill: proc.pid, rm: dir });
  const logTail = () => {
    try {
      return readFileSync(join(dir, "pgbouncer.log"), "utf8").trimEnd().split("\n").slice(-20).join("\n");
    } catch {
      return "(no pgbouncer log)";
    }
  };
  const stop = async () => {
    if (proc.exitCode === null && proc.signalCode === null) proc.kill("SIGINT");
    const timer = setTimeout(() => proc.kill("SIGKILL"), 10_000);
    await proc.exited;
    clearTimeout(timer);
    rmSync(dir, { recursive: true, force: true });
    forget();
  };
  try {
    await waitForPort(port, proc, 15_000);
  } catch (err) {
    const tail = logTail();
    await stop();
    throw new Error(`PgBouncer ${(err as Error).message}:\n${tail}`);
  }
  return { name: upstream.socketDir ? "PgBouncer over the Unix socket" : "PgBouncer", port, pid: proc.pid, stop, logTail, alive: () => proc.exitCode === null && proc.signalCode === null };
}

/**
 * The database and user --upstream would give, as a config file: a URL's host cannot be a folder, and a host that
 * starts with / is the folder of PostgreSQL's Unix socket (as in libpq and PgBouncer).
 */
function socketConfig(socketDir: string, pgPort: number): string {
  return writeConfig(`[databases.postgres]
host = ${JSON.stringify(socketDir)}
port = ${pgPort}
dbname = "postgres"
user = "postgres"
password = "postgres"

[users.postgres]
password = "postgres"
`);
}

/** pgbun in transaction mode in front of pgPort with the same pool size and client limit as PgBouncer. */
export async function startPgbunTarget(pgPort: number, s: PoolerSettings, workers = 1, tls?: ClientTlsFiles, extras: PgbunExtras = {}): Promise<RunningPooler> {
  const args = [
    ...(extras.socketDir ? ["--config", socketConfig(extras.socketDir, pgPort)] : ["--upstream", `postgres://postgres:postgres@127.0.0.1:${pgPort}/postgres`]),
    "--pool-mode", "transaction",
    "--pool-size", String(s.poolSize),
    "--max-client-conn", String(s.maxClientConn),
    "--auth-type", s.auth,
    "--no-log-connections",
    "--no-log-disconnections",
    ...(workers > 1 ? ["--workers", String(workers)] : []),
    ...(tls ? ["--client-tls-sslmode", "prefer", "--client-tls-cert-file", tls.cert, "--client-tls-key-file", tls.key] : []),
    ...(extras.prepareUnnamed ? ["--prepare-unnamed"] : []),
  ];
  const p: PgbunProcess = await startPgbun(args, { timeoutMs: 30_000 });
  const variant = [workers > 1 ? `${workers} workers` : "", extras.prepareUnnamed ? "prepare_unnamed" : "", extras.socketDir ? "over the Unix socket" : ""].filter(Boolean).join(", ");
  return {
    name: variant ? `pgbun ${variant}` : "pgbun",
    port: p.port,
    pid: p.proc.pid,
    async stop() {
      await p.stop("SIGINT");
    },
    alive: () => p.proc.exitCode === null && p.proc.signalCode === null,
    logTail: () => p.output().trimEnd().split("\n").slice(-20).join("\n"),
  };
}

/** Whether this pgbun's --help lists --workers. */
export function pgbunHasWorkers(): boolean {
  const r = Bun.spawnSync([process.execPath, "src/main.ts", "--help"], { cwd: join(import.meta.dir, ".."), stdout: "pipe", stderr: "pipe" });
  return /--workers\b/.test(r.stdout.toString() + r.stderr.toString());
}

/** The bare Bun relay of bench/relay.ts in front of pgPort: one upstream connection per client, nothing parsed. */
export async function startRelay(pgPort: number): Promise<RunningPooler> {
  const port = await freePort();
  const proc = Bun.spawn([process.execPath, join(import.meta.dir, "relay.ts"), String(port), String(pgPort)], { stdin: "ignore", stdout: "ignore", stderr: "pipe" });
  const forget = undoIfKilled({ kill: proc.pid });
  const stop = async () => {
    proc.kill("SIGTERM");
    await proc.exited;
    forget();
  };
  try {
    await waitForPort(port, proc, 15_000);
  } catch (err) {
    await stop();
    throw new Error(`bench/relay.ts ${(err as Error).message}: ${await new Response(proc.stderr).text()}`);
  }
  return { name: "Bun relay", port, pid: proc.pid, stop, alive: () => proc.exitCode === null && proc.signalCode === null, logTail: () => "" };
}
