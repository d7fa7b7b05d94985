// unix_socket_dir / unix_socket_mode (psql -h DIR, the admin console, hba "local" lines) and the wildcard database
// [databases."*"] with autodb_idle_timeout, against a real PostgreSQL.

import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { existsSync, mkdtempSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import postgres from "postgres";
import { adminQuery, writeConfig } from "./harness/config-file.ts";
import { startPgbun, type PgbunProcess } from "./harness/pgbun.ts";
import { freePort, startPostgres, type PgInstance } from "./harness/postgres.ts";

let pg: PgInstance;
let dir: string;
const started: PgbunProcess[] = [];

beforeAll(async () => {
  pg = await startPostgres();
  dir = mkdtempSync(join(tmpdir(), "pgbun-unix-"));
});

afterAll(async () => {
  for (const p of started) await p.stop();
  await pg.stop();
  rmSync(dir, { recursive: true, force: true });
});

async function pgbun(args: string[]): Promise<PgbunProcess> {
  const p = await startPgbun(args);
  started.push(p);
  return p;
}

/** psql over pgbun's Unix socket: -h is the folder, -p the port, as with PostgreSQL. */
async function psqlUnix(socketDir: string, port: number, user: string, db: string, sql: string, password = "") {
  const proc = Bun.spawn(["psql", "-X", "-A", "-t", "-F", "\t", "-h", socketDir, "-p", String(port), "-U", user, "-d", db, "-c", sql], {
    stdout: "pipe",
    stderr: "pipe",
    env: { ...process.env, PGPASSWORD: password },
  });
  const [out, err, code] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text(), proc.exited]);
  return { out: out.trim(), err, code };
}

describe("unix_socket_dir", () => {
  test("psql -h DIR reaches pgbun and its admin console; the socket has unix_socket_mode; SHOW CLIENTS says unix", async () => {
    const sockets = mkdtempSync(join(dir, "s-"));
    const p = await pgbun(["--upstream", pg.url("app", "apppass", "app"), "--unix-socket-dir", sockets, "--unix-socket-mode", "0700", "--admin-users", "app"]);
    const path = join(sockets, `.s.PGSQL.${p.port}`);
    // Printed right after the TCP line the harness waits for.
    for (let i = 0; i < 50 && !p.output().includes("Unix socket"); i++) await Bun.sleep(20);
    expect(p.output()).toContain(`pgbun listening on Unix socket ${path}\n`);
    expect(statSync(path).isSocket()).toBe(true);
    expect(statSync(path).mode & 0o777).toBe(0o700);
    const q = await psqlUnix(sockets, p.port, "app", "app", "SELECT current_user, current_database()", "apppass");
    expect(q.err).toBe("");
    expect(q.out).toBe("app\tapp");
    const clients = await psqlUnix(sockets, p.port, "app", "pgbun", "SHOW CLIENTS", "apppass");
    expect(clients.code).toBe(0);
    // The console client itself is the Unix one: type C, user app, database pgbun, addr and local_addr unix.
    expect(clients.out.split("\n").some((l) => /^C\tapp\tpgbun\t\w+\tunix\t0\tunix\t0\t/.test(l))).toBe(true);
    await p.stop("SIGTERM");
    expect(existsSync(path)).toBe(false);
  });

  test("a socket file left by a killed pgbun is replaced; one a live pgbun answers on is not", async () => {
    const sockets = mkdtempSync(join(dir, "s-"));
    const port = await freePort();
    const args = ["--upstream", pg.url("app", "apppass", "app"), "--listen", `127.0.0.1:${port}`, "--unix-socket-dir", sockets];
    const first = await pgbun(args);
    await first.stop("SIGKILL");
    expect(existsSync(join(sockets, `.s.PGSQL.${port}`))).toBe(true);
    const second = await pgbun(args);
    expect((await psqlUnix(sockets, port, "app", "app", "SELECT 1", "apppass")).out).toBe("1");
    // Another pgbun with the same port (on another address) would need the same socket: it stops, naming the problem.
    const clash = Bun.spawn([process.execPath, "src/main.ts", "--upstream", pg.url("app", "apppass", "app"), "--listen", `127.0.0.2:${port}`, "--unix-socket-dir", sockets], {
      stdout: "pipe",
      stderr: "pipe",
    });
    const [err, code] = await Promise.all([new Response(clash.stderr).text(), clash.exited]);
    expect(code).toBe(1);
    expect(err).toContain(`another process listens on ${join(sockets, `.s.PGSQL.${port}`)}`);
    expect((await psqlUnix(sockets, port, "app", "app", "SELECT 2", "apppass")).out).toBe("2");
    await second.stop();
  });

  test("hba local lines apply to the Unix socket only: trusted there, a password over TCP", async () => {
    const sockets = mkdtempSync(join(dir, "s-"));
    const hba = join(dir, "local.conf");
    writeFileSync(hba, "local all all trust\nhost all all 127.0.0.1/32 scram-sha-256\n");
    const p = await pgbun(["--upstream", pg.url("app", "apppass", "app"), "--unix-socket-dir", sockets, "--auth-type", "hba", "--auth-hba-file", hba]);
    expect((await psqlUnix(sockets, p.port, "app", "app", "SELECT current_user")).out).toBe("app");
    const tcp = Bun.spawn(["psql", "-X", "-w", "-h", "127.0.0.1", "-p", String(p.port), "-U", "app", "-d", "app", "-c", "SELECT 1"], { stderr: "pipe", env: { ...process.env, PGPASSWORD: "" } });
    const [err, code] = await Promise.all([new Response(tcp.stderr).text(), tcp.exited]);
    expect(code).not.toBe(0);
    expect(err).toContain("password");
  });
});

describe('the wildcard database [databases."*"]', () => {
  test("serves a database created after start, is listed in SHOW DATABASES, and is freed after autodb_idle_timeout", async () => {
    const config = writeConfig(`[pgbun]
pool_mode = "transaction"
admin_users = ["app"]
autodb_idle_timeout = 1

[databases."*"]
host = "127.0.0.1"
port = ${pg.port}

[databases.fixed]
host = "127.0.0.1"
port = ${pg.port}
dbname = "app"

[users.app]
password = "apppass"
`);
    const p = await pgbun(["--config", config]);
    await pg.psql("CREATE DATABASE later OWNER app");
    const sql = postgres(p.url("app", "apppass", "later"), { max: 1 });
    expect((await sql`SELECT current_database() AS d`)[0]!.d).toBe("later");
    // An entry of its own still wins over the wildcard.
    const fixed = postgres(p.url("app", "apppass", "fixed"), { max: 1 });
    expect((await fixed`SELECT current_database() AS d`)[0]!.d).toBe("app");
    await fixed.end();
    const listed = await adminQuery(p.port, "SHOW DATABASES", "app", "apppass");
    expect(listed.find((r) => r.name === "later")).toMatchObject({ name: "later", database: "later", port: String(pg.port) });
    await sql.end();
    // Unused for a second: the pool and its server go, and PostgreSQL sees the connection close.
    const gone = async () => (await pg.psql("SELECT count(*) FROM pg_stat_activity WHERE datname = 'later'")) === "0";
    for (let i = 0; i < 60 && !(await gone()); i++) await Bun.sleep(100);
    expect(await gone()).toBe(true);
    expect((await adminQuery(p.port, "SHOW DATABASES", "app", "apppass")).map((r) => r.name)).not.toContain("later");
    // And it comes back when asked for again.
    const again = postgres(p.url("app", "apppass", "later"), { max: 1 });
    expect((await again`SELECT 1 AS one`)[0]!.one).toBe(1);
    await again.end();
    expect(p.output()).toContain("wildcard database freed after autodb_idle_timeout");
  });
});
