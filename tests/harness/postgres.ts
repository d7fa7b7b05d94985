// A real, throwaway PostgreSQL for tests: initdb once into a template, copy it per instance, run on a free port.

import { existsSync, mkdtempSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { atEnd } from "./cleanup.ts";

export interface PgInstance {
  host: string;
  port: number;
  dataDir: string;
  superuser: string;
  password: string;
  url(user?: string, password?: string, db?: string): string;
  psql(sql: string, opts?: { user?: string; password?: string; db?: string }): Promise<string>;
  stop(mode?: "fast" | "immediate"): Promise<void>;
  start(): Promise<void>;
  restart(): Promise<void>;
}

const asRoot = process.getuid?.() === 0;

export function findPgBin(name: string): string | null {
  for (const dir of (process.env.PATH ?? "").split(":")) {
    if (dir && existsSync(join(dir, name))) return join(dir, name);
  }
  const base = "/usr/lib/postgresql";
  if (existsSync(base)) {
    const versions = readdirSync(base).sort((a, b) => Number(b) - Number(a));
    for (const v of versions) if (existsSync(join(base, v, "bin", name))) return join(base, v, "bin", name);
  }
  return null;
}

function pgBin(name: string): string {
  const p = findPgBin(name);
  if (!p) throw new Error(`PostgreSQL's ${name} not found: install the server binaries (apt-get install -y postgresql) or put them on PATH`);
  return p;
}

export async function freePort(): Promise<number> {
  const l = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data() {} } });
  const port = l.port;
  l.stop(true);
  return port;
}

/** Runs a PostgreSQL program, as the postgres system user when we are root (initdb and postgres refuse root). */
function run(cmd: string[], opts: { allowFail?: boolean } = {}): { code: number; out: string } {
  const full = asRoot ? ["runuser", "-u", "postgres", "--", ...cmd] : cmd;
  const r = Bun.spawnSync(full, { stdout: "pipe", stderr: "pipe", env: { ...process.env, LC_ALL: "C" } });
  const out = r.stdout.toString() + r.stderr.toString();
  if (r.exitCode !== 0 && !opts.allowFail) throw new Error(`${cmd.join(" ")} failed (${r.exitCode}):\n${out}`);
  return { code: r.exitCode ?? 1, out };
}

function ownedTempDir(prefix: string): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  if (asRoot) Bun.spawnSync(["chown", "postgres:postgres", dir]);
  return dir;
}

const HBA = [
  "local all all trust",
  "host all md5user 127.0.0.1/32 md5",
  "host all plainuser 127.0.0.1/32 password",
  "host all all 127.0.0.1/32 scram-sha-256",
].join("\n");

const SETUP_SQL = `
ALTER ROLE postgres PASSWORD 'postgres';
SET password_encryption = 'md5';
CREATE ROLE md5user LOGIN PASSWORD 'md5pass';
SET password_encryption = 'scram-sha-256';
CREATE ROLE plainuser LOGIN PASSWORD 'plainpass';
CREATE ROLE app LOGIN PASSWORD 'apppass';
CREATE DATABASE app OWNER app;
`;

let template: string | null = null;

/** initdb is the slow part: do it once per test run and copy the result for every instance. */
async function templateDir(): Promise<string> {
  if (template) return template;
  const root = ownedTempDir("pgbun-pg-template-");
  const data = join(root, "data");
  run([pgBin("initdb"), "-D", data, "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync", "--locale=C"]);
  await Bun.write(join(data, "pg_hba.conf"), HBA + "\n");
  if (asRoot) Bun.spawnSync(["chown", "postgres:postgres", join(data, "pg_hba.conf")]);
  const port = await freePort();
  const sock = ownedTempDir("pgbun-sock-");
  run([pgBin("pg_ctl"), "-D", data, "-w", "-o", `-p ${port} -k ${sock} -c listen_addresses=''`, "-l", join(root, "log"), "start"]);
  try {
    for (const stmt of SETUP_SQL.split(";").map((s) => s.trim()).filter(Boolean)) {
      run([pgBin("psql"), "-X", "-q", "-h", sock, "-p", String(port), "-U", "postgres", "-d", "postgres", "-v", "ON_ERROR_STOP=1", "-c", stmt]);
    }
  } finally {
    run([pgBin("pg_ctl"), "-D", data, "-w", "-m", "fast", "stop"]);
    rmSync(sock, { recursive: true, force: true });
  }
  atEnd(() => rmSync(root, { recursive: true, force: true }));
  template = data;
  return data;
}

const running = new Set<PgInstance>();
atEnd(() => {
  for (const pg of running) {
    run([pgBin("pg_ctl"), "-D", pg.dataDir, "-m", "immediate", "stop"], { allowFail: true });
  }
});

export async function startPostgres(opts: { port?: number; dataDir?: string; keep?: boolean; maxConnections?: number; log?: boolean } = {}): Promise<PgInstance> {
  const port = opts.port ?? (await freePort());
  let dataDir = opts.dataDir;
  const root = ownedTempDir("pgbun-pg-");
  if (!dataDir || !existsSync(join(dataDir, "PG_VERSION"))) {
    const tpl = await templateDir();
    const target = dataDir ?? join(root, "data");
    Bun.spawnSync(["cp", "-a", tpl, target]);
    if (asRoot) Bun.spawnSync(["chown", "-R", "postgres:postgres", target]);
    dataDir = target;
  }
  const sock = root;
  const logFile = join(root, "log");
  const options = [
    `-p ${port}`,
    `-k ${sock}`,
    "-c listen_addresses=127.0.0.1",
    `-c max_connections=${opts.maxConnections ?? 200}`,
    "-c fsync=off",
    "-c synchronous_commit=off",
    "-c full_page_writes=off",
  ].join(" ");
  const dir = dataDir;
  const pg: PgInstance = {
    host: "127.0.0.1",
    port,
    dataDir: dir,
    superuser: "postgres",
    password: "postgres",
    url: (user = "postgres", password = "postgres", db = "postgres") =>
      `postgres://${encodeURIComponent(user)}:${encodeURIComponent(password)}@127.0.0.1:${port}/${db}`,
    async psql(sql, o = {}) {
      const user = o.user ?? "postgres";
      const proc = Bun.spawn(["psql", "-X", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-h", "127.0.0.1", "-p", String(port), "-U", user, "-d", o.db ?? "postgres", "-c", sql], {
        stdout: "pipe",
        stderr: "pipe",
        env: { ...process.env, PGPASSWORD: o.password ?? (user === "postgres" ? "postgres" : "") },
      });
      const [out, err, code] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text(), proc.exited]);
      if (code !== 0) throw new Error(`psql failed: ${err.trim()}`);
      return out.trim();
    },
    async start() {
      const r = run([pgBin("pg_ctl"), "-D", dir, "-w", "-t", "60", "-o", options, "-l", logFile, "start"], { allowFail: true });
      if (r.code !== 0) {
        const tail = existsSync(logFile) ? (await Bun.file(logFile).text()).split("\n").slice(-20).join("\n") : "";
        throw new Error(`PostgreSQL did not start on port ${port}:\n${r.out}\n${tail}`);
      }
      running.add(pg);
    },
    async stop(mode = "fast") {
      run([pgBin("pg_ctl"), "-D", dir, "-w", "-m", mode, "stop"], { allowFail: true });
      running.delete(pg);
    },
    async restart() {
      await pg.stop("fast");
      await pg.start();
    },
  };
  await pg.start();
  if (opts.keep) running.delete(pg);
  else {
    atEnd(() => rmSync(root, { recursive: true, force: true }));
  }
  return pg;
}
