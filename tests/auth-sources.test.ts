// Where pgbun learns users and how they must log in, as PgBouncer does: auth_file (userlist.txt), auth_user +
// auth_query, auth_type = hba with auth_hba_file, and a user's own auth_type; against real PostgreSQL roles.

import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import postgres from "postgres";
import { saslInitialResponse, startupMessage } from "../src/protocol/messages.ts";
import { formatScramVerifier, scramVerifierFromPassword } from "../src/protocol/scram.ts";
import { adminQuery, writeConfig } from "./harness/config-file.ts";
import { startPgbun, type PgbunProcess } from "./harness/pgbun.ts";
import { startPostgres, type PgInstance } from "./harness/postgres.ts";
import { errorCode, errorMessage, RawClient, type Msg } from "./harness/raw-client.ts";
import { makeCertificates, type TestCertificates } from "./harness/tls.ts";

let pg: PgInstance;
let dir: string;
const started: PgbunProcess[] = [];
/** Secrets as PostgreSQL stores them, by role. */
const stored: Record<string, string> = {};

beforeAll(async () => {
  pg = await startPostgres();
  dir = mkdtempSync(join(tmpdir(), "pgbun-auth-"));
  await pg.psql(`CREATE ROLE expired LOGIN PASSWORD 'expiredpass' VALID UNTIL '2000-01-01';
    CREATE ROLE nologin PASSWORD 'nologinpass';
    CREATE ROLE lookup LOGIN PASSWORD 'lookuppass'`);
  // auth_query's target is pg_authid, which only superusers read: lookup reads it through a SECURITY DEFINER function.
  await pg.psql(`CREATE FUNCTION public.user_lookup(i_username text, OUT uname text, OUT phash text) RETURNS record AS $$
    BEGIN
      SELECT rolname, CASE WHEN rolvaliduntil < now() THEN NULL ELSE rolpassword END FROM pg_authid WHERE rolname = i_username AND rolcanlogin
      INTO uname, phash;
      RETURN;
    END; $$ LANGUAGE plpgsql SECURITY DEFINER;
    REVOKE ALL ON FUNCTION public.user_lookup(text) FROM public;
    GRANT EXECUTE ON FUNCTION public.user_lookup(text) TO lookup`);
  for (const line of (await pg.psql("SELECT rolname || ' ' || rolpassword FROM pg_authid WHERE rolpassword IS NOT NULL")).split("\n")) {
    const [name, secret] = line.split(" ");
    stored[name!] = secret!;
  }
});

afterAll(async () => {
  for (const p of started) await p.stop();
  await pg.stop();
  rmSync(dir, { recursive: true, force: true });
});

function file(name: string, text: string): string {
  const path = join(dir, name);
  writeFileSync(path, text);
  return path;
}

async function pgbun(pgbunSection: string, extra = ""): Promise<PgbunProcess> {
  const config = writeConfig(`[pgbun]
pool_mode = "transaction"
${pgbunSection}

[databases.app]
host = "127.0.0.1"
port = ${pg.port}

[databases.postgres]
host = "127.0.0.1"
port = ${pg.port}
${extra}`);
  const p = await startPgbun(["--config", config]);
  started.push(p);
  return p;
}

async function currentUser(p: PgbunProcess, user: string, password: string, db = "postgres"): Promise<string> {
  const sql = postgres(p.url(user, password, db), { max: 1, onnotice: () => {} });
  try {
    return (await sql`SELECT current_user AS u`)[0]!.u;
  } finally {
    await sql.end();
  }
}

async function rawLogin(p: PgbunProcess, user: string, db: string, password: string): Promise<Msg[]> {
  const c = await RawClient.connect(p.port);
  const msgs = await c.login(user, db, password);
  c.close();
  return msgs;
}

/** What the client saw: the authentication requests' codes and the final error, without the random parts. */
function shape(msgs: Msg[]): string[] {
  return msgs.map((m) => (m.tag === "R" ? `R${new DataView(m.body.buffer, m.body.byteOffset).getInt32(0)}` : m.tag === "E" ? `E ${errorCode(m)}` : m.tag));
}

describe("auth_file", () => {
  test("the secrets PostgreSQL stores log clients in, and pgbun in to the server: SCRAM via the client's proof, md5 hash, plain", async () => {
    const authFile = file(
      "userlist.txt",
      `; comment lines and text after the second field are ignored, as in PgBouncer
"app" "${stored.app}"
"md5user" "${stored.md5user}" extra
"plainuser" "plainpass"
"odd""name" "x"
`,
    );
    const p = await pgbun(`auth_file = "${authFile}"\nauth_type = "md5"`);
    // app has a SCRAM secret: md5 auth_type then uses SCRAM, and the proof's keys log pgbun in to PostgreSQL as app.
    expect(await currentUser(p, "app", "apppass", "app")).toBe("app");
    // md5user has an md5 hash: the client answers md5, and the hash itself answers PostgreSQL's md5 challenge.
    expect(await currentUser(p, "md5user", "md5pass")).toBe("md5user");
    expect(await currentUser(p, "plainuser", "plainpass")).toBe("plainuser");
    const wrong = await rawLogin(p, "app", "app", "wrong");
    const unknown = await rawLogin(p, "nobody", "app", "wrong");
    expect(errorCode(wrong.at(-1)!)).toBe("28P01");
    expect(errorMessage(unknown.at(-1)!)).toBe('password authentication failed for user "nobody"');
    expect(shape(unknown)).toEqual(shape(wrong));
  });

  test("an unknown user is shown the same SCRAM salt at every attempt, as a real user is: the salt tells nobody who exists", async () => {
    const p = await pgbun(`auth_file = "${file("salt.txt", `"app" "${stored.app}"\n`)}"`);
    const saltOf = async (user: string) => {
      const c = await RawClient.connect(p.port);
      c.send(startupMessage({ user, database: "app" }));
      await c.next();
      c.send(saslInitialResponse("SCRAM-SHA-256", "n,,n=,r=abcdefghijkl"));
      const m = await c.next();
      c.close();
      return /,s=([^,]+),/.exec(new TextDecoder().decode(m.body.subarray(4)))![1];
    };
    expect(await saltOf("nobody")).toBe(await saltOf("nobody"));
    expect(await saltOf("nobody")).not.toBe(await saltOf("someone-else"));
    expect(await saltOf("app")).toBe(stored.app!.split("$")[1]!.split(":")[1]!);
  });

  test("a SCRAM secret that is not the server's (another salt) fails the server login with a message naming the fix", async () => {
    const other = formatScramVerifier(scramVerifierFromPassword("apppass"));
    const p = await pgbun(`auth_file = "${file("other.txt", `"app" "${other}"\n`)}"`);
    const msgs = await rawLogin(p, "app", "app", "apppass");
    expect(errorCode(msgs.at(-1)!)).toBe("08006");
    expect(errorMessage(msgs.at(-1)!)).toContain("is not the one pgbun has");
  });

  test("a malformed line stops pgbun at start with the file, the line and the format", async () => {
    const config = writeConfig(`[pgbun]\nauth_file = "${file("bad.txt", `"app" "ok"\napp secret\n`)}"\n[databases.app]\nport = ${pg.port}\n`);
    const proc = Bun.spawn([process.execPath, "src/main.ts", "--config", config], { stdout: "pipe", stderr: "pipe" });
    const [err, code] = await Promise.all([new Response(proc.stderr).text(), proc.exited]);
    expect(code).toBe(2);
    expect(err.trim()).toBe(`pgbun: auth_file line ${join(dir, "bad.txt")}:2 is not "user" "secret": each line holds two double-quoted fields (write "" for a quote inside one)`);
  });
});

describe("auth_user and auth_query", () => {
  // The function lives in database postgres: auth_dbname sends every lookup there.
  const section = (query = "") => `auth_user = "lookup"\nauth_dbname = "postgres"\n${query}auth_file = "${file("lookup.txt", `"lookup" "lookuppass"\n`)}"`;

  test("users found only by the default auth_query log in with their stored SCRAM or md5 secret, and pgbun logs in as them", async () => {
    // PgBouncer's default query reads pg_authid, so auth_user must be a superuser for it.
    const p = await pgbun(`auth_user = "postgres"\nauth_file = "${file("su.txt", `"postgres" "postgres"\n`)}"\nauth_type = "md5"\nadmin_users = ["postgres"]`);
    expect(await currentUser(p, "app", "apppass", "app")).toBe("app");
    expect(await currentUser(p, "md5user", "md5pass")).toBe("md5user");
    // SHOW USERS lists them as PgBouncer does: auth_file's users and those auth_query found.
    const users = (await adminQuery(p.port, "SHOW USERS", "postgres", "postgres")).map((r) => r.name).sort();
    expect(users).toEqual(["app", "md5user", "postgres"]);
  });

  test("an expired role, a role that cannot log in and a nonexistent one fail exactly like a wrong password", async () => {
    const p = await pgbun(section(`auth_query = "SELECT uname, phash FROM public.user_lookup($1)"\n`));
    expect(await currentUser(p, "app", "apppass", "app")).toBe("app");
    const wrong = await rawLogin(p, "app", "app", "wrong");
    expect(errorCode(wrong.at(-1)!)).toBe("28P01");
    for (const [user, password] of [
      ["expired", "expiredpass"],
      ["nologin", "nologinpass"],
      ["nobody", "whatever"],
    ] as const) {
      const msgs = await rawLogin(p, user, "app", password);
      expect(errorMessage(msgs.at(-1)!)).toBe(`password authentication failed for user "${user}"`);
      expect(shape(msgs)).toEqual(shape(wrong));
    }
  });

  test("when auth_query itself fails, every login is refused alike and the log says why", async () => {
    const p = await pgbun(section(`auth_query = "SELECT rolname, rolpassword FROM pg_authid WHERE rolname = $1"\n`));
    for (const user of ["app", "nobody"]) {
      const msgs = await rawLogin(p, user, "app", "apppass");
      expect(errorCode(msgs.at(-1)!)).toBe("08006");
      expect(errorMessage(msgs.at(-1)!)).toBe(`pgbun: cannot look up user "${user}": auth_query failed (pgbun's log says why)`);
    }
    expect(p.output()).toContain("permission denied for table pg_authid");
  });
});

describe("auth_type = hba", () => {
  test("the first line matching connection type, database, user and address picks the method", async () => {
    file("hba-users", "plainuser\n");
    const hba = file(
      "hba.conf",
      `# type  database  user       address         method
host    all       all        10.0.0.0/8      trust
host    app       md5user    127.0.0.1/32    reject
host    all       @hba-users 127.0.0.1/32    password
host    all       md5user    127.0.0.1 255.255.255.255 md5
host    "postgres" app       127.0.0.1/32    trust
host    app       app        127.0.0.1/32    scram-sha-256
`,
    );
    const p = await pgbun(`auth_type = "hba"\nauth_hba_file = "${hba}"\nauth_file = "${file("hba-userlist.txt", `"app" "apppass"\n"md5user" "${stored.md5user}"\n"plainuser" "plainpass"\n`)}"`);
    // By user and database: app is trusted on postgres, asked for SCRAM on app.
    const trusted = await rawLogin(p, "app", "postgres", "");
    expect(shape(trusted)).toContain("R0");
    expect(trusted.at(-1)!.tag).toBe("Z");
    expect(shape(await rawLogin(p, "app", "app", "apppass"))).toContain("R10");
    expect(await currentUser(p, "app", "apppass", "app")).toBe("app");
    // By user list from a file: cleartext; md5user: md5 on postgres, rejected on app by an earlier line.
    expect(shape(await rawLogin(p, "plainuser", "postgres", "plainpass"))[0]).toBe("R3");
    expect(await currentUser(p, "md5user", "md5pass")).toBe("md5user");
    const rejected = await rawLogin(p, "md5user", "app", "md5pass");
    expect(errorCode(rejected.at(-1)!)).toBe("28000");
    expect(errorMessage(rejected.at(-1)!)).toBe('pgbun: auth_hba_file rejects host "127.0.0.1", no TLS, user "md5user", database "app"');
    // By address: the 10.0.0.0/8 trust line never applies to 127.0.0.1, and no line covers this user.
    const none = await rawLogin(p, "nobody", "postgres", "");
    expect(errorMessage(none.at(-1)!)).toBe('pgbun: no auth_hba_file line matches host "127.0.0.1", no TLS, user "nobody", database "postgres"');
  });

  test("SIGHUP re-reads the hba file", async () => {
    const hba = file("reload.conf", "host all all 127.0.0.1/32 reject\n");
    const p = await pgbun(`auth_type = "hba"\nauth_hba_file = "${hba}"\nauth_file = "${file("reload-users.txt", `"app" "apppass"\n`)}"`);
    expect(errorCode((await rawLogin(p, "app", "app", "apppass")).at(-1)!)).toBe("28000");
    writeFileSync(hba, "host all all 127.0.0.1/32 scram-sha-256\n");
    p.proc.kill("SIGHUP");
    for (let i = 0; i < 50 && !p.output().includes("config reloaded"); i++) await Bun.sleep(50);
    expect(await currentUser(p, "app", "apppass", "app")).toBe("app");
  });

  test("an hba line pgbun cannot honour stops it at start, naming the line and what to write instead", async () => {
    for (const [line, why] of [
      ["local all all peer", "method peer is not supported by pgbun"],
      ["host all +admins 127.0.0.1/32 md5", "group membership (+admins) is not supported"],
      ["host all all db.example.com md5", `"db.example.com" is not an IP address in CIDR form (host names are not supported, as in PgBouncer)`],
    ] as const) {
      const hba = file("bad-hba.conf", `host all all 127.0.0.1/32 md5\n${line}\n`);
      const proc = Bun.spawn([process.execPath, "src/main.ts", "--auth-type", "hba", "--auth-hba-file", hba, "--upstream", pg.url("app", "apppass", "app")], { stderr: "pipe" });
      const [err, code] = await Promise.all([new Response(proc.stderr).text(), proc.exited]);
      expect(code).toBe(2);
      expect(err).toContain(`pgbun: auth_hba_file ${hba} line 2: ${why}`);
    }
  });
});

describe("auth_type = hba over TLS", () => {
  async function psqlConn(p: PgbunProcess, conn: string, password: string) {
    const proc = Bun.spawn(["psql", "-X", "-A", "-t", "-w", `host=127.0.0.1 port=${p.port} dbname=app ${conn}`, "-c", "SELECT current_user"], {
      stdout: "pipe",
      stderr: "pipe",
      env: { ...process.env, PGPASSWORD: password },
    });
    const [out, err, code] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text(), proc.exited]);
    return { out: out.trim(), err, code };
  }
  let made: TestCertificates | null = null;
  /** One set of certificates for both tests: openssl takes a while. */
  const certificates = () => (made ??= makeCertificates());
  const tlsFiles = (certs: TestCertificates) => `client_tls_cert_file = "${certs.serverCert}"\nclient_tls_key_file = "${certs.serverKey}"\nclient_tls_ca_file = "${certs.ca}"`;

  test("hostssl lines match TLS logins only, hostnossl plain ones only", async () => {
    const certs = certificates();
    const hba = file("tls-hba.conf", "hostssl all app 127.0.0.1/32 scram-sha-256\nhostnossl all app 127.0.0.1/32 reject\n");
    const p = await pgbun(`auth_type = "hba"\nauth_hba_file = "${hba}"\nclient_tls_sslmode = "prefer"\n${tlsFiles(certs)}`, `[users.app]\npassword = "apppass"\n`);
    expect(await psqlConn(p, "user=app sslmode=require", "apppass")).toMatchObject({ out: "app", code: 0 });
    const plain = await psqlConn(p, "user=app sslmode=disable", "apppass");
    expect(plain.code).not.toBe(0);
    expect(plain.err).toContain('pgbun: auth_hba_file rejects host "127.0.0.1", no TLS, user "app", database "app"');
  });

  test("cert logs a user in by its verified client certificate, whose CN must be the user", async () => {
    const certs = certificates();
    const hba = file("cert-hba.conf", "hostssl all all 127.0.0.1/32 cert\n");
    const p = await pgbun(`auth_type = "hba"\nauth_hba_file = "${hba}"\nclient_tls_sslmode = "verify-ca"\n${tlsFiles(certs)}`, `[users.app]\npassword = "apppass"\n[users.md5user]\npassword = "md5pass"\n`);
    const c = certs.clientCert("app");
    const withCert = `sslmode=require sslcert=${c.cert} sslkey=${c.key}`;
    // No password is asked for, nor given.
    expect(await psqlConn(p, `user=app ${withCert}`, "")).toMatchObject({ out: "app", code: 0 });
    const other = await psqlConn(p, `user=md5user ${withCert}`, "md5pass");
    expect(other.code).not.toBe(0);
    expect(other.err).toContain('pgbun: certificate authentication failed for user "md5user"');
  });
});

describe("a user's own auth_type", () => {
  test("overrides auth_type for that user only", async () => {
    const p = await pgbun(`auth_type = "scram-sha-256"`, `[users.app]\npassword = "apppass"\n[users.plainuser]\npassword = "plainpass"\nauth_type = "plain"\n`);
    expect(shape(await rawLogin(p, "app", "app", "apppass"))[0]).toBe("R10");
    expect(shape(await rawLogin(p, "plainuser", "postgres", "plainpass"))[0]).toBe("R3");
    expect(await currentUser(p, "plainuser", "plainpass")).toBe("plainuser");
  });
});
