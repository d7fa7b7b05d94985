// The test harness's own PostgreSQL: three server auth methods, psql(), stop, start, restart, a kept data folder.

import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import postgres from "postgres";
import { findPgBin, freePort, startPostgres, type PgInstance } from "./postgres.ts";

let pg: PgInstance;

beforeAll(async () => {
  pg = await startPostgres({ maxConnections: 50 });
});

afterAll(async () => {
  await pg?.stop();
});

async function whoAmI(url: string): Promise<string> {
  const sql = postgres(url, { max: 1, onnotice: () => {}, connect_timeout: 10 });
  try {
    const [row] = await sql<Array<{ user: string }>>`SELECT current_user AS user`;
    return row!.user;
  } finally {
    await sql.end({ timeout: 5 });
  }
}

async function loginError(url: string): Promise<string> {
  const sql = postgres(url, { max: 1, onnotice: () => {}, connect_timeout: 10 });
  try {
    await sql`SELECT 1`;
    return "logged in";
  } catch (err) {
    return String((err as { code?: string }).code);
  } finally {
    await sql.end({ timeout: 5 });
  }
}

describe("findPgBin and freePort", () => {
  test("find initdb, pg_ctl, postgres and psql", () => {
    for (const name of ["initdb", "pg_ctl", "postgres", "psql"]) expect(findPgBin(name)).toBeString();
    expect(findPgBin("no-such-postgres-program")).toBeNull();
  });

  test("freePort gives a port nobody listens on", async () => {
    const port = await freePort();
    expect(port).toBeGreaterThan(1023);
    const l = Bun.listen({ hostname: "127.0.0.1", port, socket: { data() {} } });
    l.stop(true);
  });
});

describe("a started instance", () => {
  test("listens on 127.0.0.1 with the settings the tests rely on", async () => {
    expect(pg.host).toBe("127.0.0.1");
    expect(pg.url()).toBe(`postgres://postgres:postgres@127.0.0.1:${pg.port}/postgres`);
    expect(await pg.psql("SHOW listen_addresses")).toBe("127.0.0.1");
    expect(await pg.psql("SHOW max_connections")).toBe("50");
    expect(await pg.psql("SHOW fsync")).toBe("off");
    expect(await pg.psql("SHOW unix_socket_directories")).not.toContain(pg.dataDir);
  });

  test("the superuser postgres logs in with SCRAM", async () => {
    expect(await whoAmI(pg.url())).toBe("postgres");
    expect(await pg.psql("SELECT rolsuper FROM pg_roles WHERE rolname = current_user")).toBe("t");
  });

  test("md5user logs in with md5 and its password is stored as md5", async () => {
    expect(await whoAmI(pg.url("md5user", "md5pass"))).toBe("md5user");
    expect(await pg.psql("SELECT left(rolpassword, 3) FROM pg_authid WHERE rolname = 'md5user'")).toBe("md5");
  });

  test("plainuser logs in with a cleartext password", async () => {
    expect(await whoAmI(pg.url("plainuser", "plainpass"))).toBe("plainuser");
  });

  test("app owns database app and logs in with SCRAM", async () => {
    expect(await whoAmI(pg.url("app", "apppass", "app"))).toBe("app");
    expect(await pg.psql("SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = 'app'")).toBe("app");
    expect(await pg.psql("SELECT left(rolpassword, 13) FROM pg_authid WHERE rolname IN ('postgres', 'plainuser', 'app') GROUP BY 1")).toBe("SCRAM-SHA-256");
  });

  test("the server sees each login through its own pg_hba line", async () => {
    const rules = await pg.psql("SELECT type, user_name, auth_method FROM pg_hba_file_rules ORDER BY line_number");
    expect(rules.split("\n")).toEqual(["local|{all}|trust", "host|{md5user}|md5", "host|{plainuser}|password", "host|{all}|scram-sha-256"]);
  });

  test("a wrong password is refused with 28P01", async () => {
    expect(await loginError(pg.url("md5user", "wrong"))).toBe("28P01");
    expect(await loginError(pg.url("plainuser", "wrong"))).toBe("28P01");
    expect(await loginError(pg.url("app", "wrong", "app"))).toBe("28P01");
  });

  test("psql returns rows unaligned and trimmed, as any known role without a password", async () => {
    expect(await pg.psql("SELECT 1, 'a' UNION ALL SELECT 2, 'b'")).toBe("1|a\n2|b");
    expect(await pg.psql("SELECT current_user, current_database()", { user: "app", db: "app" })).toBe("app|app");
    expect(await pg.psql("SELECT current_user", { user: "md5user", password: "md5pass" })).toBe("md5user");
  });

  test("psql throws with the server's message", async () => {
    await expect(pg.psql("SELECT * FROM no_such_table")).rejects.toThrow(/relation "no_such_table" does not exist/);
    await expect(pg.psql("SELECT 1", { user: "app", password: "wrong" })).rejects.toThrow(/password authentication failed/);
  });
});

describe("stop, start and restart", () => {
  test("restart keeps the port and the data and ends existing sessions", async () => {
    await pg.psql("CREATE TABLE IF NOT EXISTS kept (v int); INSERT INTO kept VALUES (42)");
    const before = await pg.psql("SELECT pg_postmaster_start_time()");
    const port = pg.port;
    await pg.restart();
    expect(pg.port).toBe(port);
    expect(await pg.psql("SELECT pg_postmaster_start_time()")).not.toBe(before);
    expect(await pg.psql("SELECT v FROM kept")).toBe("42");
  });

  test("stop makes the port refuse connections, start brings it back", async () => {
    await pg.stop();
    expect(existsSync(join(pg.dataDir, "postmaster.pid"))).toBeFalse();
    await expect(pg.psql("SELECT 1")).rejects.toThrow(/psql/);
    await expect(Bun.connect({ hostname: "127.0.0.1", port: pg.port, socket: { data() {} } })).rejects.toThrow();
    await pg.stop();
    await pg.start();
    expect(await pg.psql("SELECT 1")).toBe("1");
  });

  test("an immediate stop is recovered from on the next start", async () => {
    await pg.psql("INSERT INTO kept VALUES (43)");
    await pg.stop("immediate");
    await pg.start();
    expect(await pg.psql("SELECT count(*) FROM kept")).toBe("2");
  });
});

describe("a chosen data folder", () => {
  test("gets the template once and is reused as it is afterwards", async () => {
    const parent = mkdtempSync(join(tmpdir(), "pgbun-harness-test-"));
    if (process.getuid?.() === 0) Bun.spawnSync(["chmod", "755", parent]);
    const dataDir = join(parent, "data");
    try {
      const first = await startPostgres({ dataDir, maxConnections: 20 });
      await first.psql("CREATE TABLE marker (v text); INSERT INTO marker VALUES ('first run')");
      await first.stop();
      const second = await startPostgres({ dataDir, maxConnections: 20 });
      expect(second.port).not.toBe(0);
      expect(await second.psql("SELECT v FROM marker")).toBe("first run");
      expect(await whoAmI(second.url("md5user", "md5pass"))).toBe("md5user");
      await second.stop();
    } finally {
      rmSync(parent, { recursive: true, force: true });
    }
  });

  test("two instances run side by side on different ports", async () => {
    const other = await startPostgres({ maxConnections: 20 });
    try {
      expect(other.port).not.toBe(pg.port);
      await other.psql("CREATE TABLE only_here (v int)");
      expect(await other.psql("SELECT to_regclass('only_here') IS NOT NULL")).toBe("t");
      expect(await pg.psql("SELECT to_regclass('only_here') IS NOT NULL")).toBe("f");
    } finally {
      await other.stop();
    }
  });
});
