import { afterAll, describe, expect, test } from "bun:test";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { ConfigError, formatConfigError } from "./errors.ts";
import { loadConfig } from "./load.ts";
import { SETTING_KEYS, type Settings } from "./schema.ts";

const UP = ["--upstream", "postgres://app:s3cr%40t@db.example:5433/appdb"];
const dirs: string[] = [];
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

function load(argv: string[], env: Record<string, string> = {}, cwd = "/") {
  return loadConfig({ argv, env, cwd });
}

/** A folder holding pgbun.toml with this text, to load with a relative --config. */
function folderWith(toml: string): string {
  const dir = mkdtempSync(join(tmpdir(), "pgbun-config-"));
  dirs.push(dir);
  writeFileSync(join(dir, "pgbun.toml"), toml);
  return dir;
}

function fromFile(toml: string, argv: string[] = UP, env: Record<string, string> = {}) {
  return load([...argv, "--config", "pgbun.toml"], env, folderWith(toml));
}

/** The one line a user would see; fails the test when nothing or something other than a ConfigError is thrown. */
function errorLine(fn: () => unknown): string {
  try {
    fn();
  } catch (e) {
    if (!(e instanceof ConfigError)) throw e;
    expect(e.code).toBe("CONFIG_ERROR");
    const line = formatConfigError(e);
    expect(line).not.toContain("\n");
    return line;
  }
  throw new Error("expected a ConfigError");
}

const DEFAULTS: Settings = {
  listen: { host: "127.0.0.1", port: 6432 },
  pool_mode: "session",
  default_pool_size: 20,
  min_pool_size: 0,
  reserve_pool_size: 0,
  max_client_conn: 100,
  max_db_connections: 0,
  auth_type: "scram-sha-256",
  server_reset_query: "DISCARD ALL",
  server_reset_query_always: false,
  query_wait_timeout: 120,
  server_connect_timeout: 15,
  server_login_retry: 15,
  server_idle_timeout: 600,
  server_lifetime: 3600,
  client_idle_timeout: 0,
  client_login_timeout: 60,
  idle_transaction_timeout: 0,
  query_timeout: 0,
  shutdown_timeout: 30,
  max_packet_size: 1073741824,
  max_prepared_statements: 200,
  prepare_unnamed: false,
  admin_users: [],
  stats_users: [],
  stats_listen: null,
  stats_period: 60,
  log_level: "info",
  log_format: "text",
  log_connections: true,
  log_disconnections: true,
  log_pooler_errors: true,
  application_name_add_host: false,
  workers: 1,
  tcp_keepalive: true,
  client_tls_sslmode: "disable",
  client_tls_key_file: "",
  client_tls_cert_file: "",
  client_tls_ca_file: "",
  client_tls_protocols: "secure",
  client_tls_ciphers: "default",
  server_tls_sslmode: "prefer",
  server_tls_ca_file: "",
  server_tls_key_file: "",
  server_tls_cert_file: "",
  server_tls_protocols: "secure",
  server_tls_ciphers: "default",
  auth_file: "",
  auth_hba_file: "",
  auth_user: "",
  auth_query: "SELECT rolname, CASE WHEN rolvaliduntil < now() THEN NULL ELSE rolpassword END FROM pg_authid WHERE rolname=$1 AND rolcanlogin",
  auth_dbname: "",
  autodb_idle_timeout: 3600,
  unix_socket_dir: "",
  unix_socket_mode: "0777",
  role_check_interval: 1,
  primary_wait_timeout: 10,
  ban_timeout: 60,
  max_replica_lag: "0",
};

describe("defaults", () => {
  test("every setting defaults to PgBouncer's value", () => {
    const c = load(UP);
    expect(c.settings).toEqual(DEFAULTS);
    expect(c.source.configFile).toBeNull();
  });

  test("no two configs share a default list", () => {
    load(UP).settings.admin_users.push("mallory");
    expect(load(UP).settings.admin_users).toEqual([]);
  });
});

describe("precedence", () => {
  const toml = `[pgbun]
pool_mode = "statement"
default_pool_size = 7
max_client_conn = 50
query_wait_timeout = 5
log_connections = false
listen = "0.0.0.0:7000"
admin_users = ["root", "ops"]
`;

  test("the file overrides the defaults", () => {
    const s = fromFile(toml).settings;
    expect(s).toMatchObject({ pool_mode: "statement", default_pool_size: 7, max_client_conn: 50, query_wait_timeout: 5, log_connections: false });
    expect(s.listen).toEqual({ host: "0.0.0.0", port: 7000 });
    expect(s.admin_users).toEqual(["root", "ops"]);
  });

  test("the environment overrides the file, and flags override both", () => {
    const env = { PGBUN_DEFAULT_POOL_SIZE: "8", PGBUN_MAX_CLIENT_CONN: "60", PGBUN_POOL_MODE: "transaction", PGBUN_ADMIN_USERS: "a, b" };
    const s = fromFile(toml, [...UP, "--max-client-conn", "70", "--pool-mode=session", "--log-connections"], env).settings;
    expect(s.query_wait_timeout).toBe(5);
    expect(s.default_pool_size).toBe(8);
    expect(s.admin_users).toEqual(["a", "b"]);
    expect(s.max_client_conn).toBe(70);
    expect(s.pool_mode).toBe("session");
    expect(s.log_connections).toBe(true);
  });

  test("--pool-size and PGBUN_POOL_SIZE stand for default_pool_size at their own level", () => {
    expect(load([...UP, "--pool-size", "3"]).settings.default_pool_size).toBe(3);
    expect(load(UP, { PGBUN_POOL_SIZE: "4" }).settings.default_pool_size).toBe(4);
    expect(load([...UP, "--pool-size", "3"], { PGBUN_DEFAULT_POOL_SIZE: "9" }).settings.default_pool_size).toBe(3);
  });

  test("PGBUN_CONFIG names the file when --config does not, relative to the working directory", () => {
    const dir = folderWith(`[pgbun]\nworkers = 3\n`);
    const c = load(UP, { PGBUN_CONFIG: "pgbun.toml" }, dir);
    expect(c.settings.workers).toBe(3);
    expect(c.source.configFile).toBe(resolve(dir, "pgbun.toml"));
  });

  test("an empty environment variable counts as unset, except where empty means off", () => {
    const s = fromFile(`[pgbun]\nquery_timeout = 9\nstats_listen = "127.0.0.1:6480"\n`, UP, { PGBUN_QUERY_TIMEOUT: "", PGBUN_STATS_LISTEN: "" }).settings;
    expect(s.query_timeout).toBe(9);
    expect(s.stats_listen).toBeNull();
  });
});

describe("values", () => {
  test("booleans, seconds, lists and addresses in each form", () => {
    expect(load([...UP, "--no-log-connections"]).settings.log_connections).toBe(false);
    expect(load([...UP, "--log-connections=false"]).settings.log_connections).toBe(false);
    expect(load([...UP, "--tcp-keepalive", "off"]).settings.tcp_keepalive).toBe(false);
    expect(load(UP, { PGBUN_APPLICATION_NAME_ADD_HOST: "1" }).settings.application_name_add_host).toBe(true);
    expect(fromFile(`[pgbun]\nlog_pooler_errors = 0\n`).settings.log_pooler_errors).toBe(false);
    expect(load([...UP, "--query-timeout", "2.5"]).settings.query_timeout).toBe(2.5);
    expect(fromFile(`[pgbun]\nstats_users = "a,b"\n`).settings.stats_users).toEqual(["a", "b"]);
    expect(load([...UP, "--stats-listen", "[::1]:0"]).settings.stats_listen).toEqual({ host: "::1", port: 0 });
    expect(load([...UP, "--listen", "*:6432"]).settings.listen).toEqual({ host: "0.0.0.0", port: 6432 });
    expect(load([...UP, "--server-reset-query", ""]).settings.server_reset_query).toBe("");
  });

  test("a repeated flag takes its last value", () => {
    expect(load([...UP, "--pool-mode", "statement", "--pool-mode", "transaction"]).settings.pool_mode).toBe("transaction");
  });
});

describe("--upstream", () => {
  test("defines the database and the user clients log in as, percent-decoded", () => {
    const c = load(["--upstream", "postgres://app%2Fro:p%40ss%3Aw%2Fo%25rd@db.example:5433/app%20db"]);
    expect(c.databases.get("app db")).toEqual({ name: "app db", host: "db.example", port: 5433, dbname: "app db", user: "app/ro", password: "p@ss:w/o%rd" });
    expect(c.users.get("app/ro")).toEqual({ name: "app/ro", password: "p@ss:w/o%rd" });
  });

  test("the port defaults to 5432, IPv6 hosts lose their brackets, and PGBUN_UPSTREAM works as well", () => {
    const c = load([], { PGBUN_UPSTREAM: "postgresql://u:p@[::1]/d" });
    expect(c.databases.get("d")).toMatchObject({ host: "::1", port: 5432, user: "u", password: "p" });
  });

  test("each --upstream adds a database, and replaces a same-named one from the file but keeps its other keys", () => {
    const toml = `[databases.d]\nhost = "old"\npool_mode = "statement"\n\n[databases.other]\n\n[users.u]\npassword = "old"\nmax_user_connections = 4\n`;
    const c = fromFile(toml, ["--upstream", "postgres://u:new@h/d", "--upstream", "postgres://v:w@h2/e"]);
    expect([...c.databases.keys()].sort()).toEqual(["d", "e", "other"]);
    expect(c.databases.get("d")).toMatchObject({ host: "h", pool_mode: "statement", user: "u", password: "new" });
    expect(c.users.get("u")).toEqual({ name: "u", password: "new", max_user_connections: 4 });
  });

  test("a bad URL is named without its password", () => {
    const line = errorLine(() => load(["--upstream", "postgres://u:hunter2@h/d?sslmode=require"]));
    expect(line).toContain('"postgres://u:***@h/d?sslmode=require" for upstream (flag --upstream)');
    expect(line).not.toContain("hunter2");
    expect(errorLine(() => load([], { PGBUN_UPSTREAM: "mysql://u:p@h/d" }))).toContain("(env PGBUN_UPSTREAM): the scheme is mysql");
    expect(errorLine(() => load(["--upstream", "postgres://u:p@h/"]))).toContain("the database name is missing");
    expect(errorLine(() => load(["--upstream", "postgres://u:%zz@h/d"]))).toContain("percent-escape");
  });
});

describe("the file's databases and users", () => {
  test("database keys have PgBouncer's defaults: host 127.0.0.1, port 5432, dbname the section's name", () => {
    const c = fromFile(`[databases.main]\n\n[databases.ro]\nhost = "10.0.0.2"\nport = 6543\ndbname = "main"\nuser = "r"\npassword = "x"\npool_mode = "transaction"\npool_size = 3\nmin_pool_size = 1\nmax_db_connections = 9\n`, []);
    expect(c.databases.get("main")).toEqual({ name: "main", host: "127.0.0.1", port: 5432, dbname: "main" });
    expect(c.databases.get("ro")).toEqual({
      name: "ro",
      host: "10.0.0.2",
      port: 6543,
      dbname: "main",
      user: "r",
      password: "x",
      pool_mode: "transaction",
      pool_size: 3,
      min_pool_size: 1,
      max_db_connections: 9,
    });
  });

  test("user passwords may be plain text, an md5 hash or a SCRAM verifier", () => {
    const md5 = "md5" + "0123456789abcdef".repeat(2);
    const scram = "SCRAM-SHA-256$4096:c2FsdHNhbHQ=$c3RvcmVka2V5c3RvcmVka2V5c3RvcmVka2V5c3Q=:c2VydmVya2V5c2VydmVya2V5c2VydmVya2V5c2U=";
    const c = fromFile(`[databases.d]\n[users.a]\npassword = "md5sum is not hex"\n[users.b]\npassword = "${md5}"\n[users.c]\npassword = "${scram}"\npool_mode = "session"\n`, []);
    expect(c.users.get("a")?.password).toBe("md5sum is not hex");
    expect(c.users.get("b")?.password).toBe(md5);
    expect(c.users.get("c")).toEqual({ name: "c", password: scram, pool_mode: "session" });
  });

  test("a broken md5 hash or SCRAM verifier is refused without showing it", () => {
    const short = errorLine(() => fromFile(`[databases.d]\n[users.a]\npassword = "md5abc123"\n`, []));
    expect(short).toContain("invalid value (hidden, 9 characters) for users.a.password (file key users.a.password in ");
    expect(short).toContain('"md5" followed by 32 lowercase hex digits');
    expect(short).not.toContain("md5abc123");
    expect(errorLine(() => fromFile(`[databases.d]\n[users.a]\npassword = "SCRAM-SHA-256$4096:abc"\n`, []))).toContain("a SCRAM verifier is");
  });

  test("a database password without a user is refused", () => {
    expect(errorLine(() => fromFile(`[databases.d]\npassword = "x"\n`, []))).toContain("databases.d.password");
    expect(errorLine(() => fromFile(`[databases.d]\npassword = "x"\n`, []))).toContain("a password needs a user");
  });

  test("bad database and user values name the key, the value and the file", () => {
    const dir = folderWith(`[databases.d]\nport = 70000\n`);
    expect(errorLine(() => load(["--config", "pgbun.toml"], {}, dir))).toBe(
      `pgbun: invalid value 70000 for databases.d.port (file key databases.d.port in ${join(dir, "pgbun.toml")}): expected an integer from 1 to 65535`,
    );
    expect(errorLine(() => fromFile(`[databases.d]\npool_size = 0\n`, []))).toContain("invalid value 0 for databases.d.pool_size");
    expect(errorLine(() => fromFile(`[databases.d]\npool_mode = "sometimes"\n`, []))).toContain('"sometimes" for databases.d.pool_mode');
    expect(errorLine(() => fromFile(`[databases.d]\n[users.u]\nmax_user_connections = -2\n`, []))).toContain("-2 for users.u.max_user_connections");
    expect(errorLine(() => fromFile(`[databases]\nd = "host=x dbname=y"\n`, []))).toContain("pgbun wants a section: [databases.d]");
  });
});

describe("mistakes", () => {
  test("each kind of bad setting names the key, the value, where it came from and what is allowed", () => {
    expect(errorLine(() => load([...UP, "--pool-mode", "sometimes"]))).toBe(
      'pgbun: invalid value "sometimes" for pool_mode (flag --pool-mode): expected one of session, transaction, statement',
    );
    expect(errorLine(() => load(UP, { PGBUN_DEFAULT_POOL_SIZE: "0" }))).toBe(
      'pgbun: invalid value "0" for default_pool_size (env PGBUN_DEFAULT_POOL_SIZE): expected an integer from 1 to 100000',
    );
    expect(errorLine(() => load([...UP, "--pool-size", "2.5"]))).toContain('"2.5" for default_pool_size (flag --pool-size): expected an integer');
    expect(errorLine(() => load([...UP, "--min-pool-size", "-1"]))).toContain('"-1" for min_pool_size (flag --min-pool-size)');
    expect(errorLine(() => load(UP, { PGBUN_QUERY_WAIT_TIMEOUT: "soon" }))).toContain('"soon" for query_wait_timeout (env PGBUN_QUERY_WAIT_TIMEOUT): expected a number of seconds');
    expect(errorLine(() => load([...UP, "--log-connections=maybe"]))).toContain('"maybe" for log_connections (flag --log-connections): expected true or false');
    expect(errorLine(() => load([...UP, "--listen", "6432"]))).toContain('"6432" for listen (flag --listen): expected host:port');
    expect(errorLine(() => load([...UP, "--stats-listen", "h:99999"]))).toContain('"h:99999" for stats_listen');
    expect(errorLine(() => load([...UP, "--max-packet-size", "100"]))).toContain("expected an integer from 1024 to 2147483647");
    expect(errorLine(() => load([...UP, "--auth-type", "password"]))).toContain("expected one of trust, plain, md5, scram-sha-256");
    const dir = folderWith(`[pgbun]\nmax_client_conn = -1\nadmin_users = [1]\n`);
    expect(errorLine(() => load([...UP, "--config", "pgbun.toml"], {}, dir))).toBe(
      `pgbun: invalid value -1 for max_client_conn (file key max_client_conn in ${join(dir, "pgbun.toml")}): expected an integer from 1 to 10000000`,
    );
    expect(errorLine(() => fromFile(`[pgbun]\nadmin_users = [1]\n`))).toContain("invalid value [1] for admin_users");
  });

  test("an unknown [pgbun] key or section is an error, with the near name it may have meant", () => {
    expect(errorLine(() => fromFile(`[pgbun]\ndefault_pool_sise = 3\n`))).toContain("unknown key default_pool_sise in [pgbun]");
    expect(errorLine(() => fromFile(`[pgbun]\ndefault_pool_sise = 3\n`))).toContain("did you mean default_pool_size?");
    expect(errorLine(() => fromFile(`[pgbun]\nlisten_port = 6432\n`))).toContain("did you mean listen?");
    expect(errorLine(() => fromFile(`[pgbouncer]\npool_mode = "session"\n`))).toContain("did you mean [pgbun]?");
    expect(errorLine(() => fromFile(`pool_mode = "session"\n`))).toContain("pool_mode belongs in the [pgbun] section");
    expect(errorLine(() => fromFile(`[databases.x]\nhots = "h"\n`))).toContain("unknown key hots in [databases.x]");
    expect(errorLine(() => fromFile(`[databases.x]\nhots = "h"\n`))).toContain("did you mean host?");
  });

  test("unknown PGBUN_ environment variables are left alone, since other tools share the prefix", () => {
    expect(load(UP, { PGBUN_MODE: "x", PGBUN_HOST: "y", PGBUN_WORKER_INDEX: "0" }).settings).toEqual(DEFAULTS);
  });

  test("a missing or broken file names its path and how it was given", () => {
    expect(errorLine(() => load(["--config", "nope.toml"], {}, "/tmp"))).toContain('config file /tmp/nope.toml does not exist (given by --config "nope.toml", relative to /tmp)');
    expect(errorLine(() => load(UP, { PGBUN_CONFIG: "/nowhere/pgbun.toml" }))).toContain("given by PGBUN_CONFIG");
    expect(errorLine(() => fromFile(`[pgbun\n`))).toContain("is not valid TOML");
  });

  test("no database at all says how to add one", () => {
    expect(errorLine(() => load([]))).toBe(
      "pgbun: no database to pool: pass --upstream postgres://USER:PASSWORD@HOST:PORT/DB, or add a [databases.NAME] section with host, port and dbname to a --config file",
    );
    expect(errorLine(() => fromFile(`[pgbun]\n`, []))).toContain("add a [databases.NAME] section");
  });
});

describe("several hosts per database", () => {
  test("libpq's comma-separated form and a TOML list name the same hosts, each with its own port or the database's", () => {
    const text = (host: string) => `[databases.app]\nhost = ${host}\nport = 6000\nuser = "app"\n`;
    for (const host of [`"10.0.0.1,10.0.0.2:5433,[::1]:5434,db3"`, `["10.0.0.1", "10.0.0.2:5433", "[::1]:5434", "db3"]`]) {
      const db = fromFile(text(host), []).databases.get("app")!;
      expect(db.hosts).toEqual([
        { host: "10.0.0.1", port: 6000 },
        { host: "10.0.0.2", port: 5433 },
        { host: "::1", port: 5434 },
        { host: "db3", port: 6000 },
      ]);
      expect([db.host, db.port]).toEqual(["10.0.0.1", 6000]);
    }
    expect(fromFile(text(`"10.0.0.1"`), []).databases.get("app")!.hosts).toBeUndefined();
  });

  test("role, primary_reads, read_write_split and patroni_url are read per database", () => {
    const c = fromFile(
      `[databases.r]\nhost = "a,b"\nrole = "replica"\nprimary_reads = false\n[databases.w]\nhost = "a,b"\nread_write_split = true\nprimary_reads = "fallback"\npatroni_url = ["http://a:8008", ""]\n`,
      [],
    );
    expect(c.databases.get("r")).toMatchObject({ role: "replica", primary_reads: "false" });
    expect(c.databases.get("w")).toMatchObject({ read_write_split: true, primary_reads: "fallback", patroni_url: ["http://a:8008", ""] });
  });

  test("--upstream takes libpq's multi-host URL, and target_session_attrs as the role", () => {
    const db = load(["--upstream", "postgres://app:pw@h1:5432,h2:5433/appdb?target_session_attrs=read-only"]).databases.get("appdb")!;
    expect(db.hosts).toEqual([
      { host: "h1", port: 5432 },
      { host: "h2", port: 5433 },
    ]);
    expect(db.role).toBe("replica");
    expect(load([], { PGBUN_UPSTREAM: "postgres://app:pw@h1,h2/appdb" }).databases.get("appdb")!.hosts).toEqual([
      { host: "h1", port: 5432 },
      { host: "h2", port: 5432 },
    ]);
  });

  test("the HA settings are flags and PGBUN_ variables like every other", () => {
    const c = load([...UP, "--role-check-interval", "0.5", "--max-replica-lag", "16MB"], { PGBUN_PRIMARY_WAIT_TIMEOUT: "3", PGBUN_BAN_TIMEOUT: "20" });
    expect(c.settings).toMatchObject({ role_check_interval: 0.5, max_replica_lag: "16MB", primary_wait_timeout: 3, ban_timeout: 20 });
  });

  test("mistakes in a host list or an HA setting name the key and what is allowed", () => {
    expect(errorLine(() => fromFile(`[databases.app]\nhost = "a,b:99999"\n`, []))).toContain("port 99999 of host entry \"b:99999\" is out of range");
    expect(errorLine(() => fromFile(`[databases.app]\nhost = "a,,b"\n`, []))).toContain("an empty entry in the host list");
    expect(errorLine(() => fromFile(`[databases.app]\nhost = "a,a"\n`, []))).toContain("host a:5432 is listed twice");
    expect(errorLine(() => fromFile(`[databases.app]\nhost = "a,b"\npatroni_url = "http://a:8008"\n`, []))).toContain(
      "expected one Patroni address per host (2), in the same order",
    );
    expect(errorLine(() => fromFile(`[databases.app]\nhost = "a,b"\nrole = "standby"\n`, []))).toContain("databases.app.role");
    expect(errorLine(() => load([...UP, "--max-replica-lag", "lots"]))).toBe(
      'pgbun: invalid value "lots" for max_replica_lag (flag --max-replica-lag): expected 0 (off), bytes of WAL (16MB, 512kB, 1048576) or seconds of replay delay (5s, 500ms)',
    );
    expect(errorLine(() => load(["--upstream", "postgres://app:pw@h1,h2/appdb?target_session_attrs=fast"]))).toContain("target_session_attrs=fast is not one of");
  });
});

describe("config/pgbun.example.toml", () => {
  const path = resolve(import.meta.dir, "../../config/pgbun.example.toml");

  test("loads, and every setting in it is written with its default", () => {
    const c = load(["--config", path]);
    expect(c.settings).toEqual(DEFAULTS);
    expect(c.databases.size).toBe(2);
    const text = readFileSync(path, "utf8");
    for (const key of SETTING_KEYS) expect(text).toMatch(new RegExp(`^${key} = `, "m"));
  });
});

describe("settings accepted but not carried out", () => {
  test("are said once each when set away from their defaults, with what pgbun does instead; defaults say nothing", () => {
    expect(load(UP).notices).toEqual([]);
    const notices = load([...UP, "--reserve-pool-size", "5", "--tcp-keepalive=false"]).notices!;
    expect(notices).toHaveLength(2);
    expect(notices[0]).toContain("reserve_pool_size = 5 is not implemented: pgbun has no reserve pool");
    expect(notices[1]).toContain("tcp_keepalive = false is not implemented");
  });
});
