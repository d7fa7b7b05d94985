// A real, throwaway PostgreSQL for tests: initdb once into a cached template, copy it per instance, run it on a free port.

import { createHash } from "node:crypto";
import { accessSync, appendFileSync, chmodSync, constants, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, realpathSync, renameSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { atEnd } from "./cleanup.ts";
import { undoIfKilled } from "./watchdog.ts";

export interface PgInstance {
  host: string;
  port: number;
  dataDir: string;
  /** The server log (pg_ctl -l); it lives beside the socket, outside dataDir. */
  logFile: string;
  superuser: string;
  password: string;
  url(user?: string, password?: string, db?: string): string;
  psql(sql: string, opts?: { user?: string; password?: string; db?: string }): Promise<string>;
  stop(mode?: "fast" | "immediate"): Promise<void>;
  start(): Promise<void>;
  restart(): Promise<void>;
}

export interface StartPostgresOptions {
  /** Default: a free port. */
  port?: number;
  /** Reused when it already holds a cluster, else the template is copied into it. Default: a temp folder. */
  dataDir?: string;
  /** Leave the server running and its folders in place when the test process ends. */
  keep?: boolean;
  /** Default 200. */
  maxConnections?: number;
  /** Log every connection, disconnection and statement to logFile. */
  log?: boolean;
  /** More server settings, e.g. { wal_level: "logical" } for logical replication. */
  settings?: Record<string, string>;
  /** ssl = on with these PEM files, copied beside the socket with the key readable by the server's user only. */
  ssl?: { certFile: string; keyFile: string; caFile?: string };
  /** pg_hba.conf lines put before the harness's own (the first matching line wins). */
  hba?: string;
  /** Default "127.0.0.1"; any 127.x address works on Linux, e.g. "127.0.0.1,127.0.0.2" to reach it by a second name. */
  listenAddresses?: string;
}

/** Every instance has these login roles; psql() looks the password up by user name. */
export const ROLE_PASSWORDS: Readonly<Record<string, string>> = { postgres: "postgres", md5user: "md5pass", plainuser: "plainpass", app: "apppass" };

// The harness itself connects over the socket (trust); everyone else over TCP with the method the role name says.
const HBA = `local all all trust
host all md5user 127.0.0.1/32 md5
host all plainuser 127.0.0.1/32 password
host all all 127.0.0.1/32 scram-sha-256
`;

// md5user's verifier must be stored as md5 or the md5 hba line could never succeed for it.
const SETUP_SQL = `
SET password_encryption = 'scram-sha-256';
ALTER ROLE postgres PASSWORD 'postgres';
SET password_encryption = 'md5';
CREATE ROLE md5user LOGIN PASSWORD 'md5pass';
SET password_encryption = 'scram-sha-256';
CREATE ROLE plainuser LOGIN PASSWORD 'plainpass';
CREATE ROLE app LOGIN PASSWORD 'apppass';
CREATE DATABASE app OWNER app;
GRANT CONNECT ON DATABASE postgres, app, template1 TO md5user, plainuser;
`;

// 1 MB WAL segments instead of 16: every instance starts with a copy of the template, pg_wal included.
const INITDB_ARGS = ["-U", "postgres", "-E", "UTF8", "--locale=C", "--auth-local=trust", "--auth-host=scram-sha-256", "--no-sync", "--wal-segsize=1"];

const TEMPLATE_CONF = "\npassword_encryption = 'scram-sha-256'\n";

const asRoot = process.getuid?.() === 0;
/** initdb and postgres refuse to run as root, so a root test run hands the cluster to this system user. */
const SERVER_OS_USER = "postgres";

function isExecutable(path: string): boolean {
  try {
    accessSync(path, constants.X_OK);
    return statSync(path).isFile();
  } catch {
    return false;
  }
}

export function findPgBin(name: string): string | null {
  for (const dir of (process.env.PATH ?? "").split(":")) {
    if (dir && isExecutable(join(dir, name))) return join(dir, name);
  }
  const base = "/usr/lib/postgresql";
  const versions = existsSync(base) ? readdirSync(base).filter((v) => /^\d+(\.\d+)?$/.test(v)) : [];
  for (const v of versions.sort((a, b) => Number(b) - Number(a))) {
    if (isExecutable(join(base, v, "bin", name))) return join(base, v, "bin", name);
  }
  return null;
}

/** initdb, pg_ctl, postgres, psql and pg_isready from the one installation initdb belongs to (PATH may mix versions). */
function serverBin(name: string): string {
  const initdb = findPgBin("initdb");
  const sibling = initdb ? join(dirname(realpathSync(initdb)), name) : null;
  const found = sibling && isExecutable(sibling) ? sibling : findPgBin(name);
  if (!found) throw new Error(`PostgreSQL's ${name} not found on PATH nor in /usr/lib/postgresql/*/bin: apt-get install -y postgresql`);
  return found;
}

export async function freePort(): Promise<number> {
  const listener = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data() {} } });
  const port = listener.port;
  listener.stop(true);
  return port;
}

/** The environment without PG* variables, which would otherwise steer pg_ctl, postgres and psql. */
function cleanEnv(extra: Record<string, string> = {}): Record<string, string> {
  const env: Record<string, string> = { LC_ALL: "C", LANG: "C" };
  for (const [k, v] of Object.entries(process.env)) if (v !== undefined && !k.startsWith("PG") && k !== "LC_ALL" && k !== "LANG") env[k] = v;
  return { ...env, ...extra };
}

const shellQuote = (s: string) => `'${s.replaceAll("'", `'\\''`)}'`;

function asServerUser(cmd: string[]): string[] {
  if (!asRoot) return cmd;
  if (Bun.which("runuser")) return ["runuser", "-u", SERVER_OS_USER, "--", ...cmd];
  return ["su", SERVER_OS_USER, "-s", "/bin/sh", "-c", cmd.map(shellQuote).join(" ")];
}

async function exec(cmd: string[], allowFail = false): Promise<{ code: number; out: string }> {
  // cwd "/": as the postgres user the caller's folder may be unreadable, and initdb complains about that.
  const proc = Bun.spawn(cmd, { cwd: "/", stdin: "ignore", stdout: "pipe", stderr: "pipe", env: cleanEnv() });
  const [out, err, code] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text(), proc.exited]);
  if (code !== 0 && !allowFail) throw new Error(`${cmd.join(" ")} failed (exit ${code}):\n${(out + err).trim()}`);
  return { code, out: (out + err).trim() };
}

function giveToServerUser(path: string): void {
  if (!asRoot) return;
  const r = Bun.spawnSync(["chown", "-R", `${SERVER_OS_USER}:`, path], { stderr: "pipe" });
  if (r.exitCode !== 0) throw new Error(`chown ${SERVER_OS_USER} ${path} failed: ${r.stderr.toString().trim()}`);
}

function checkServerUser(): void {
  if (asRoot && Bun.spawnSync(["id", "-u", SERVER_OS_USER], { stdout: "ignore", stderr: "ignore" }).exitCode !== 0) {
    throw new Error(`running as root, PostgreSQL must run as the "${SERVER_OS_USER}" system user, and there is none (apt-get install postgresql creates it)`);
  }
}

/** Socket paths are limited to 107 bytes, so a long TMPDIR (macOS) falls back to /tmp. */
function shortTempDir(prefix: string): string {
  const base = tmpdir().length <= 60 ? tmpdir() : "/tmp";
  const dir = mkdtempSync(join(base, prefix));
  giveToServerUser(dir);
  return dir;
}

function logTail(file: string, lines = 30): string {
  try {
    return readFileSync(file, "utf8").trimEnd().split("\n").slice(-lines).join("\n");
  } catch {
    return "(no server log)";
  }
}

function readStamp(home: string): string | null {
  try {
    return readFileSync(join(home, "stamp"), "utf8");
  } catch {
    return null;
  }
}

async function initTemplate(build: string): Promise<void> {
  const data = join(build, "data");
  await exec(asServerUser([serverBin("initdb"), "-D", data, ...INITDB_ARGS]));
  writeFileSync(join(data, "pg_hba.conf"), HBA);
  appendFileSync(join(data, "postgresql.conf"), TEMPLATE_CONF);
  writeFileSync(join(build, "setup.sql"), SETUP_SQL);
  giveToServerUser(build);
  const port = await freePort();
  const log = join(build, "setup.log");
  const start = await exec(asServerUser([serverBin("pg_ctl"), "-D", data, "-w", "-t", "60", "-l", log, "-o", `-p ${port} -k ${shellQuote(build)} -c listen_addresses=''`, "start"]), true);
  if (start.code !== 0) throw new Error(`template PostgreSQL did not start:\n${start.out}\n${logTail(log)}`);
  try {
    await exec([serverBin("psql"), "-X", "-q", "-v", "ON_ERROR_STOP=1", "-h", build, "-p", String(port), "-U", "postgres", "-d", "postgres", "-f", join(build, "setup.sql")]);
  } finally {
    await exec(asServerUser([serverBin("pg_ctl"), "-D", data, "-w", "-t", "60", "-m", "fast", "stop"]), true);
  }
}

/**
 * initdb is the slow part, so it runs once per machine into /tmp/pgbun-pg-template-<major>, stamped with a hash of
 * everything that shapes it; a changed setup or another PostgreSQL builds a fresh one. Built aside and renamed into
 * place, so concurrent runs never copy a half-made template.
 */
async function buildTemplate(): Promise<string> {
  checkServerUser();
  const initdb = serverBin("initdb");
  const version = Bun.spawnSync([initdb, "--version"]).stdout.toString().trim();
  const m = version.match(/(\d+)(?:\.(\d+))?/);
  const major = m ? (Number(m[1]) >= 10 ? m[1] : `${m[1]}.${m[2]}`) : "unknown";
  const home = join(tmpdir(), `pgbun-pg-template-${major}${asRoot ? "" : `-${process.getuid?.() ?? 0}`}`);
  const stamp = createHash("sha256").update([realpathSync(initdb), version, ...INITDB_ARGS, HBA, SETUP_SQL, TEMPLATE_CONF].join("\0")).digest("hex");
  if (readStamp(home) === stamp) return join(home, "data");

  const build = mkdtempSync(join(tmpdir(), "pgbun-pg-template-build-"));
  giveToServerUser(build);
  try {
    await initTemplate(build);
    writeFileSync(join(build, "stamp"), stamp);
    if (existsSync(home) && readStamp(home) !== stamp) {
      const old = `${home}.old-${process.pid}`;
      try {
        renameSync(home, old);
      } catch {
        /* a concurrent run is replacing it too */
      }
      rmSync(old, { recursive: true, force: true });
    }
    try {
      renameSync(build, home);
    } catch {
      /* a concurrent run put its template there first */
    }
    if (readStamp(home) !== stamp) throw new Error(`could not install the template cluster at ${home}`);
    return join(home, "data");
  } finally {
    rmSync(build, { recursive: true, force: true });
  }
}

let template: Promise<string> | null = null;

function templateDir(): Promise<string> {
  template ??= buildTemplate().catch((err: unknown) => {
    template = null;
    throw err;
  });
  return template;
}

async function copyTemplate(dataDir: string): Promise<void> {
  const tpl = await templateDir();
  if (existsSync(dataDir) && readdirSync(dataDir).length > 0) throw new Error(`${dataDir} is not empty and holds no PostgreSQL cluster`);
  mkdirSync(dataDir, { recursive: true });
  const r = Bun.spawnSync(["cp", "-a", `${tpl}/.`, dataDir], { stderr: "pipe" });
  if (r.exitCode !== 0) throw new Error(`copying the template cluster into ${dataDir} failed: ${r.stderr.toString().trim()}`);
  chmodSync(dataDir, 0o700);
  giveToServerUser(dataDir);
}

export async function startPostgres(opts: StartPostgresOptions = {}): Promise<PgInstance> {
  checkServerUser();
  // Socket and log; the data too unless the caller chose a folder.
  const root = shortTempDir("pgbun-pg-");
  const dataDir = opts.dataDir ?? join(root, "data");
  try {
    if (!existsSync(join(dataDir, "PG_VERSION"))) await copyTemplate(dataDir);
  } catch (err) {
    rmSync(root, { recursive: true, force: true });
    throw err;
  }
  const logFile = join(root, "postgres.log");
  const tlsOptions = serverFileOptions(root, opts);
  const pgCtl = (...args: string[]) => asServerUser([serverBin("pg_ctl"), "-D", dataDir, "-w", "-t", "60", ...args]);
  const serverOptions = () =>
    [
      `-p ${pg.port}`,
      `-k ${shellQuote(root)}`,
      `-c listen_addresses=${opts.listenAddresses ?? "127.0.0.1"}`,
      ...tlsOptions,
      `-c max_connections=${opts.maxConnections ?? 200}`,
      // Not synchronous_commit=off: an immediate stop would then lose commits that tests have already seen succeed.
      "-c fsync=off",
      "-c full_page_writes=off",
      "-c lc_messages=C",
      ...(opts.log ? ["-c log_connections=on", "-c log_disconnections=on", "-c log_statement=all"] : []),
      ...Object.entries(opts.settings ?? {}).map(([k, v]) => `-c ${k}=${v}`),
    ].join(" ");

  const pg: PgInstance = {
    host: "127.0.0.1",
    port: opts.port ?? (await freePort()),
    dataDir,
    logFile,
    superuser: "postgres",
    password: "postgres",
    url: (user = "postgres", password = ROLE_PASSWORDS[user] ?? "postgres", db = "postgres") =>
      `postgres://${encodeURIComponent(user)}:${encodeURIComponent(password)}@127.0.0.1:${pg.port}/${encodeURIComponent(db)}`,
    async psql(sql, o = {}) {
      const user = o.user ?? "postgres";
      const db = o.db ?? "postgres";
      const cmd = [serverBin("psql"), "-X", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-h", "127.0.0.1", "-p", String(pg.port), "-U", user, "-d", db, "-c", sql];
      const env = cleanEnv({ PGPASSWORD: o.password ?? ROLE_PASSWORDS[user] ?? "", PGCONNECT_TIMEOUT: "10" });
      const proc = Bun.spawn(cmd, { stdin: "ignore", stdout: "pipe", stderr: "pipe", env });
      const [out, err, code] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text(), proc.exited]);
      if (code !== 0) throw new Error(`psql as ${user} on ${db} failed: ${err.trim() || `exit ${code}`}`);
      return out.trim();
    },
    async start() {
      const r = await exec(pgCtl("-l", logFile, "-o", serverOptions(), "start"), true);
      if (r.code !== 0) throw new Error(`PostgreSQL did not start on 127.0.0.1:${pg.port} (data ${dataDir}):\n${r.out}\n--- ${logFile} ---\n${logTail(logFile)}`);
      running.add(pg);
      await waitReady(pg);
    },
    async stop(mode = "fast") {
      const r = await exec(pgCtl("-m", mode, "stop"), true);
      running.delete(pg);
      if (r.code !== 0 && existsSync(join(dataDir, "postmaster.pid"))) throw new Error(`pg_ctl stop failed:\n${r.out}\n${logTail(logFile)}`);
    },
    async restart() {
      await pg.stop("fast");
      await pg.start();
    },
  };

  if (!opts.keep) {
    const stopNow = pgCtl("-m", "immediate", "stop");
    const forget = undoIfKilled({ run: stopNow, rm: root });
    atEnd(() => {
      if (running.delete(pg)) Bun.spawnSync(stopNow, { cwd: "/", stdout: "ignore", stderr: "ignore", env: cleanEnv() });
      rmSync(root, { recursive: true, force: true });
      forget();
    });
  }

  // A free port can be taken between freePort() and the bind; try another unless the caller fixed it.
  for (let attempt = 1; ; attempt++) {
    try {
      await pg.start();
      return pg;
    } catch (err) {
      const portTaken = /could not bind|Address already in use|could not create any TCP\/IP sockets/.test(logTail(logFile, 15));
      if (opts.port !== undefined || !portTaken || attempt >= 5) throw err;
      pg.port = await freePort();
    }
  }
}

const running = new Set<PgInstance>();

/** ssl and hba files for one instance, in its own folder: PostgreSQL refuses a key others can read. */
function serverFileOptions(root: string, opts: StartPostgresOptions): string[] {
  const out: string[] = [];
  if (opts.ssl) {
    const put = (from: string, name: string) => {
      const to = join(root, name);
      writeFileSync(to, readFileSync(from));
      chmodSync(to, 0o600);
      return to;
    };
    out.push("-c ssl=on", `-c ssl_cert_file=${put(opts.ssl.certFile, "server.crt")}`, `-c ssl_key_file=${put(opts.ssl.keyFile, "server.key")}`);
    if (opts.ssl.caFile) out.push(`-c ssl_ca_file=${put(opts.ssl.caFile, "root.crt")}`);
  }
  if (opts.hba !== undefined) {
    const file = join(root, "pg_hba.conf");
    writeFileSync(file, `${opts.hba.trim()}\n${HBA}`);
    out.push(`-c hba_file=${file}`);
  }
  giveToServerUser(root);
  return out;
}

/** pg_ctl -w has already waited for "ready"; this proves the TCP listener answers, within 15 seconds. */
async function waitReady(pg: PgInstance): Promise<void> {
  const isready = findPgBin("pg_isready") ? serverBin("pg_isready") : null;
  if (!isready) return;
  const deadline = Date.now() + 15_000;
  for (;;) {
    const proc = Bun.spawn([isready, "-q", "-h", pg.host, "-p", String(pg.port), "-t", "2"], { stdout: "ignore", stderr: "ignore", env: cleanEnv() });
    if ((await proc.exited) === 0) return;
    if (Date.now() > deadline) throw new Error(`PostgreSQL on ${pg.host}:${pg.port} is not accepting connections after 15 s:\n${logTail(pg.logFile)}`);
    await Bun.sleep(50);
  }
}
