// Client-side and server-side authentication, wrong passwords, unknown users and databases, SSL negotiation.

import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import postgres from "postgres";
import { md5PasswordHash } from "../src/protocol/md5.ts";
import { formatScramVerifier, scramVerifierFromPassword } from "../src/protocol/scram.ts";
import { startPostgres, type PgInstance } from "./harness/postgres.ts";
import { startPgbun, type PgbunProcess } from "./harness/pgbun.ts";
import { writeConfig } from "./harness/config-file.ts";
import { errorCode, errorMessage, RawClient } from "./harness/raw-client.ts";

let pg: PgInstance;
const started: PgbunProcess[] = [];

beforeAll(async () => {
  pg = await startPostgres();
});

afterAll(async () => {
  for (const p of started) await p.stop();
  await pg.stop();
});

/** A pgbun whose [users] store app's password in the given form, authenticating clients with auth_type. */
async function withConfig(authType: string, appSecret: string): Promise<PgbunProcess> {
  const file = writeConfig(
    `[pgbun]
auth_type = "${authType}"
pool_mode = "transaction"

[databases.app]
host = "127.0.0.1"
port = ${pg.port}
user = "app"
password = "apppass"

[databases.viamd5]
host = "127.0.0.1"
port = ${pg.port}
dbname = "postgres"
user = "md5user"
password = "md5pass"

[databases.viaplain]
host = "127.0.0.1"
port = ${pg.port}
dbname = "postgres"
user = "plainuser"
password = "plainpass"

[users.app]
password = "${appSecret}"
`);
  const p = await startPgbun(["--config", file]);
  started.push(p);
  return p;
}

async function rawLogin(p: PgbunProcess, user: string, db: string, password: string) {
  const c = await RawClient.connect(p.port);
  const msgs = await c.login(user, db, password);
  c.close();
  return msgs;
}

const secrets = {
  plain: "apppass",
  md5: md5PasswordHash("app", "apppass"),
  scram: formatScramVerifier(scramVerifierFromPassword("apppass")),
};

describe("client authentication", () => {
  for (const authType of ["scram-sha-256", "md5", "plain"]) {
    for (const [form, secret] of Object.entries(secrets)) {
      // md5 challenges cannot be checked against a SCRAM verifier and vice versa: pgbun then uses the method the secret allows
      test(`auth_type ${authType} with a ${form} password: right password in, wrong one 28P01`, async () => {
        const p = await withConfig(authType, secret);
        const sql = postgres(p.url("app", "apppass", "app"), { max: 1 });
        expect((await sql`SELECT current_user AS u`)[0]!.u).toBe("app");
        await sql.end();
        const bad = await rawLogin(p, "app", "app", "wrong");
        expect(bad.at(-1)!.tag).toBe("E");
        expect(errorCode(bad.at(-1)!)).toBe("28P01");
      });
    }
  }

  test("trust lets a known user in without a password and says so loudly in the log", async () => {
    const p = await withConfig("trust", "apppass");
    const msgs = await rawLogin(p, "app", "app", "");
    expect(msgs.at(-1)!.tag).toBe("Z");
    expect(p.output()).toContain("WITHOUT a password");
  });

  test("an unknown user fails exactly like a wrong password, revealing nothing", async () => {
    const p = await withConfig("scram-sha-256", "apppass");
    const unknown = await rawLogin(p, "nobody", "app", "whatever");
    const wrong = await rawLogin(p, "app", "app", "whatever");
    expect(errorCode(unknown.at(-1)!)).toBe("28P01");
    expect(errorMessage(unknown.at(-1)!)).toBe('password authentication failed for user "nobody"');
    expect(unknown.map((m) => m.tag)).toEqual(wrong.map((m) => m.tag));
  });

  test("an unknown database gets 3D000 naming only that database", async () => {
    const p = await withConfig("scram-sha-256", "apppass");
    const msgs = await rawLogin(p, "app", "nosuchdb", "apppass");
    expect(errorCode(msgs.at(-1)!)).toBe("3D000");
    const text = errorMessage(msgs.at(-1)!);
    expect(text).toContain("nosuchdb");
    expect(text).not.toContain("viamd5");
  });
});

describe("server authentication", () => {
  test("pgbun logs into PostgreSQL with SCRAM, md5 and cleartext as each role requires", async () => {
    const p = await withConfig("scram-sha-256", "apppass");
    for (const [db, user] of [
      ["app", "app"],
      ["viamd5", "md5user"],
      ["viaplain", "plainuser"],
    ] as const) {
      const sql = postgres(p.url("app", "apppass", db), { max: 1 });
      expect((await sql`SELECT current_user AS u`)[0]!.u).toBe(user);
      await sql.end();
    }
  });

  test("a wrong server password reaches the client as a clear error, and pgbun keeps running", async () => {
    const p = await startPgbun(["--upstream", pg.url("app", "not-the-password", "app"), "--pool-mode", "transaction"]);
    started.push(p);
    const msgs = await rawLogin(p, "app", "app", "not-the-password");
    expect(errorCode(msgs.at(-1)!)).toBe("08006");
    expect(errorMessage(msgs.at(-1)!)).toContain("password authentication failed");
    expect(p.proc.exitCode).toBeNull();
  });
});

describe("admin console access", () => {
  /** psql as the --upstream user against the admin console, as the README's "Run it" pgbun is used. */
  async function psqlConsole(p: PgbunProcess, password: string) {
    const proc = Bun.spawn(["psql", "-X", "-A", "-t", `host=127.0.0.1 port=${p.port} user=app dbname=pgbun`, "-c", "SHOW POOLS"], {
      stdout: "pipe",
      stderr: "pipe",
      env: { ...process.env, PGPASSWORD: password },
    });
    const [out, err, code] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text(), proc.exited]);
    return { out, err, code };
  }

  test("a user in neither admin_users nor stats_users is refused naming both settings, with a hint how to add it", async () => {
    const p = await startPgbun(["--upstream", pg.url("app", "apppass", "app"), "--pool-mode", "transaction"]);
    started.push(p);
    const r = await psqlConsole(p, "apppass");
    expect(r.code).not.toBe(0);
    expect(r.err).toContain('FATAL:  permission denied for the admin console: user "app" is in neither admin_users nor stats_users');
    expect(r.err).toContain("HINT:  add it to admin_users (every command) or stats_users (SHOW only)");
    expect(r.err).toContain("--admin-users");
    const msgs = await rawLogin(p, "app", "pgbun", "apppass");
    expect(errorCode(msgs.at(-1)!)).toBe("42501");
    // A wrong password still learns nothing about the console.
    const wrong = await rawLogin(p, "app", "pgbun", "wrong");
    expect(errorCode(wrong.at(-1)!)).toBe("28P01");
    expect(errorMessage(wrong.at(-1)!)).not.toContain("admin_users");
  });

  test("--admin-users lets the same user in", async () => {
    const p = await startPgbun(["--upstream", pg.url("app", "apppass", "app"), "--pool-mode", "transaction", "--admin-users", "app"]);
    started.push(p);
    const r = await psqlConsole(p, "apppass");
    expect(r.err).toBe("");
    expect(r.code).toBe(0);
  });
});

describe("SSL negotiation", () => {
  test("sslmode=prefer connects in plain text", async () => {
    const p = await withConfig("scram-sha-256", "apppass");
    const proc = Bun.spawn(["psql", "-X", "-A", "-t", `host=127.0.0.1 port=${p.port} user=app dbname=app sslmode=prefer`, "-c", "SELECT 42"], {
      stdout: "pipe",
      stderr: "pipe",
      env: { ...process.env, PGPASSWORD: "apppass" },
    });
    expect((await new Response(proc.stdout).text()).trim()).toBe("42");
  });

  test("sslmode=require fails with a clear message", async () => {
    const p = await withConfig("scram-sha-256", "apppass");
    const proc = Bun.spawn(["psql", "-X", `host=127.0.0.1 port=${p.port} user=app dbname=app sslmode=require`, "-c", "SELECT 1"], {
      stdout: "pipe",
      stderr: "pipe",
      env: { ...process.env, PGPASSWORD: "apppass" },
    });
    const [err, code] = await Promise.all([new Response(proc.stderr).text(), proc.exited]);
    expect(code).not.toBe(0);
    expect(err).toContain("server does not support SSL");
  });
});
