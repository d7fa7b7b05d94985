// A PgBouncer deployment's files taken as they are: pgbouncer.ini with %include, its userlist.txt and hba file. The
// same files run PgBouncer itself first, so they are ones PgBouncer accepts; then pgbun, which must serve the same
// clients the same way and report, once, each setting it does not implement.

import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { startPgbun, REPO_ROOT, type PgbunProcess } from "./harness/pgbun.ts";
import { findPgBin, freePort, startPostgres, type PgInstance } from "./harness/postgres.ts";

let pg: PgInstance;
let dir: string;
let port: number;
const started: PgbunProcess[] = [];

const asRoot = process.getuid?.() === 0;

beforeAll(async () => {
  pg = await startPostgres();
  // PgBouncer runs as the postgres system user when the tests run as root: the folder must be its too.
  dir = mkdtempSync(join(tmpdir(), "pgbun-ini-"));
  chmodSync(dir, 0o777);
  port = await freePort();
  const stored = new Map(
    (await pg.psql("SELECT rolname || ' ' || rolpassword FROM pg_authid WHERE rolpassword IS NOT NULL")).split("\n").map((l) => l.split(" ") as [string, string]),
  );
  // PostgreSQL's own socket folder: a database without host= is reached there, as PgBouncer does with unix_socket_dir.
  const pgSockets = dirname(pg.logFile);
  const files: Record<string, string> = {
    "pgbouncer.ini": `;; pgbouncer.ini as a deployment writes it
[databases]
app = host=127.0.0.1 port=${pg.port} dbname=app
; PostgreSQL's Unix socket, as the superuser: the server trusts local connections, so no password is needed anywhere
admin_db = host=${pgSockets} port=${pg.port} dbname=postgres user=postgres
reports = host=127.0.0.1 port=${pg.port} dbname=app connect_query='SELECT 1'
* = host=127.0.0.1 port=${pg.port}

[users]
md5user = pool_mode=session

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = ${port}
unix_socket_dir = ${dir}
unix_socket_mode = 0777
auth_type = hba
auth_hba_file = hba.conf
auth_file = userlist.txt
admin_users = admin
stats_users = stats
pool_mode = transaction
default_pool_size = 5
server_reset_query = DISCARD ALL
logfile = ${dir}/pgbouncer.log
pidfile = ${dir}/pgbouncer.pid
ignore_startup_parameters = extra_float_digits
%include limits.ini
`,
    // Included where the %include line is: its lines continue the [pgbouncer] section.
    "limits.ini": `max_client_conn = 50
query_wait_timeout = 30
`,
    "userlist.txt": `"app" "${stored.get("app")}"
"md5user" "${stored.get("md5user")}"
"admin" "adminpass"
"stats" "md5${new Bun.CryptoHasher("md5").update("statspassstats").digest("hex")}"
`,
    "hba.conf": `local   all   all                  trust
host    all   all    127.0.0.1/32   md5
`,
  };
  for (const [name, text] of Object.entries(files)) writeFileSync(join(dir, name), text);
});

afterAll(async () => {
  for (const p of started) await p.stop();
  await pg.stop();
  rmSync(dir, { recursive: true, force: true });
});

async function psql(args: string[], password: string) {
  const proc = Bun.spawn(["psql", "-X", "-A", "-t", "-F", "|", ...args], { stdout: "pipe", stderr: "pipe", env: { ...process.env, PGPASSWORD: password } });
  const [out, err, code] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text(), proc.exited]);
  return { out: out.trim(), err: err.trim(), code };
}

const tcp = (user: string, db: string) => ["-h", "127.0.0.1", "-p", String(port), "-U", user, "-d", db];
const unix = (user: string, db: string) => ["-h", dir, "-p", String(port), "-U", user, "-d", db];

/** What each pooler must answer the same way. */
async function sameAnswers(): Promise<void> {
  expect(await psql([...tcp("app", "app"), "-c", "SELECT current_user, current_database()"], "apppass")).toMatchObject({ out: "app|app", code: 0 });
  // md5user only in userlist.txt, through the wildcard database (its md5 hash answers PostgreSQL's md5 challenge).
  expect(await psql([...tcp("md5user", "postgres"), "-c", "SELECT current_user, current_database()"], "md5pass")).toMatchObject({ out: "md5user|postgres", code: 0 });
  // The hba file trusts the Unix socket; admin_db logs in to PostgreSQL's own socket as the password-less superuser.
  expect(await psql([...unix("app", "admin_db"), "-c", "SELECT current_user"], "")).toMatchObject({ out: "postgres", code: 0 });
  // Refused by both (PgBouncer says "SASL authentication failed", pgbun PostgreSQL's 28P01 message).
  expect((await psql([...tcp("app", "app"), "-c", "SELECT 1"], "wrong")).code).not.toBe(0);
  // The admin console under PgBouncer's name, for admin_users and stats_users.
  expect((await psql([...tcp("admin", "pgbouncer"), "-c", "SHOW POOLS"], "adminpass")).code).toBe(0);
  const stats = await psql([...tcp("stats", "pgbouncer"), "-c", "SHOW DATABASES"], "statspass");
  expect(stats.code).toBe(0);
  expect(stats.out).toContain("admin_db|");
}

describe("pgbouncer.ini", () => {
  test("PgBouncer itself runs these files", async () => {
    const bin = findPgBin("pgbouncer") ?? Bun.which("pgbouncer");
    expect(bin).not.toBeNull();
    const cmd = asRoot ? ["setpriv", "--reuid=postgres", "--regid=postgres", "--init-groups", "--", bin!, "pgbouncer.ini"] : [bin!, "pgbouncer.ini"];
    // %include and the auth files are relative to the working directory, for PgBouncer as for pgbun.
    const proc = Bun.spawn(cmd, { cwd: dir, stdout: "pipe", stderr: "pipe" });
    try {
      for (let i = 0; i < 100 && proc.exitCode === null && (await psql([...tcp("admin", "pgbouncer"), "-c", "SHOW VERSION"], "adminpass")).code !== 0; i++) await Bun.sleep(50);
      if (proc.exitCode !== null) throw new Error(`pgbouncer exited ${proc.exitCode}: ${await new Response(proc.stderr).text()}`);
      await sameAnswers();
    } finally {
      proc.kill("SIGTERM");
      await proc.exited;
    }
  });

  test("pgbun runs the same files unchanged, and reports each setting it does not implement once, with what it does instead", async () => {
    const p = await startPgbun(["--pgbouncer-ini", "pgbouncer.ini"], { cwd: dir, cmd: [process.execPath, join(REPO_ROOT, "src/main.ts")], configListens: true });
    started.push(p);
    expect(p.port).toBe(port);
    for (let i = 0; i < 50 && !p.output().includes("Unix socket"); i++) await Bun.sleep(20);
    await sameAnswers();
    expect((await psql([...tcp("app", "app"), "-c", "SELECT 1"], "wrong")).err).toContain('FATAL:  password authentication failed for user "app"');
    // psycopg over the Unix socket, as an application on the same host would connect (hba: local trust).
    const py = Bun.spawnSync(
      ["/usr/bin/python3", "-c", `import psycopg\nwith psycopg.connect(host=${JSON.stringify(dir)}, port=${port}, user="app", dbname="app") as c:\n    print(c.execute("SELECT current_user").fetchone()[0])`],
      { stdout: "pipe", stderr: "pipe" },
    );
    expect(py.stderr.toString()).toBe("");
    expect(py.stdout.toString().trim()).toBe("app");
    const out = p.output();
    expect(out).toContain(`config: logfile = ${dir}/pgbouncer.log (${join(dir, "pgbouncer.ini")}:25) is not implemented: pgbun logs to stderr only`);
    expect(out).toContain("config: pidfile = ");
    expect(out).toContain("config: ignore_startup_parameters = extra_float_digits");
    expect(out).toContain(`config: [databases] reports: connect_query=SELECT 1 (${join(dir, "pgbouncer.ini")}:6) is not implemented`);
    expect(out.split("is not implemented").length - 1).toBe(4);
    // %include: limits.ini's settings apply; [users] pool_mode applies to md5user's pool.
    const config = await psql([...tcp("admin", "pgbouncer"), "-c", "SHOW CONFIG"], "adminpass");
    expect(config.out).toContain("max_client_conn|50|");
    expect(config.out).toContain("query_wait_timeout|30|");
    const pools = await psql([...tcp("admin", "pgbouncer"), "-c", "SHOW POOLS"], "adminpass");
    expect(pools.out.split("\n").find((l) => l.startsWith("postgres|md5user|"))).toContain("|session|");
    expect(pools.out.split("\n").find((l) => l.startsWith("app|app|"))).toContain("|transaction|");
  });

  test("--config with a .ini file reads it the same way; a setting neither knows stops pgbun naming it", async () => {
    writeFileSync(join(dir, "typo.ini"), `[databases]\napp = host=127.0.0.1 port=${pg.port}\n[pgbouncer]\nlisten_port = 0\nlisten_addr = 127.0.0.1\ndefault_pol_size = 5\n`);
    const proc = Bun.spawn([process.execPath, join(REPO_ROOT, "src/main.ts"), "--config", "typo.ini"], { cwd: dir, stdout: "pipe", stderr: "pipe" });
    const [err, code] = await Promise.all([new Response(proc.stderr).text(), proc.exited]);
    expect(code).toBe(2);
    expect(err.trim()).toBe(`pgbun: ${join(dir, "typo.ini")}:6: unknown setting default_pol_size in [pgbouncer]; did you mean default_pool_size?`);
  });
});
