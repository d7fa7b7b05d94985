// Every setting pgbun knows, with PgBouncer's names, meanings and defaults; the zod checks and the types the rest of pgbun reads.

import { z } from "zod";
import { LAG_PATTERN } from "./hosts.ts";

export type PoolMode = "session" | "transaction" | "statement";
/** How clients prove who they are, in PgBouncer's words ("plain" is a cleartext password). */
export type AuthType = "trust" | "plain" | "md5" | "scram-sha-256" | "hba";
export type LogLevel = "debug" | "info" | "warn" | "error";
export type LogFormat = "text" | "json";
/** libpq's sslmode values, which PgBouncer's client_tls_sslmode and server_tls_sslmode take with the same meanings. */
export type TlsMode = "disable" | "allow" | "prefer" | "require" | "verify-ca" | "verify-full";

export interface Address {
  host: string;
  /** 0 lets the system pick a free port. */
  port: number;
}

/** The [pgbun] section. Timeouts are seconds (fractions allowed) and 0 disables them, as in PgBouncer. */
export interface Settings {
  listen: Address;
  pool_mode: PoolMode;
  default_pool_size: number;
  min_pool_size: number;
  reserve_pool_size: number;
  max_client_conn: number;
  max_db_connections: number;
  auth_type: AuthType;
  server_reset_query: string;
  server_reset_query_always: boolean;
  query_wait_timeout: number;
  server_connect_timeout: number;
  server_login_retry: number;
  server_idle_timeout: number;
  server_lifetime: number;
  client_idle_timeout: number;
  client_login_timeout: number;
  idle_transaction_timeout: number;
  query_timeout: number;
  shutdown_timeout: number;
  max_packet_size: number;
  max_prepared_statements: number;
  prepare_unnamed: boolean;
  admin_users: string[];
  stats_users: string[];
  stats_listen: Address | null;
  stats_period: number;
  log_level: LogLevel;
  log_format: LogFormat;
  log_connections: boolean;
  log_disconnections: boolean;
  log_pooler_errors: boolean;
  application_name_add_host: boolean;
  workers: number;
  tcp_keepalive: boolean;
  client_tls_sslmode: TlsMode;
  client_tls_key_file: string;
  client_tls_cert_file: string;
  client_tls_ca_file: string;
  client_tls_protocols: string;
  client_tls_ciphers: string;
  server_tls_sslmode: TlsMode;
  server_tls_ca_file: string;
  server_tls_key_file: string;
  server_tls_cert_file: string;
  server_tls_protocols: string;
  server_tls_ciphers: string;
  auth_file: string;
  auth_hba_file: string;
  auth_user: string;
  auth_query: string;
  auth_dbname: string;
  autodb_idle_timeout: number;
  unix_socket_dir: string;
  unix_socket_mode: string;
  role_check_interval: number;
  primary_wait_timeout: number;
  ban_timeout: number;
  max_replica_lag: string;
}

/** Where a database's clients are sent when it lists several hosts: the primary (read-write) or the replicas. */
export type DatabaseRole = "primary" | "replica";
/** Whether a replica database's reads may use the primary: always, never, or only when no replica can take them. */
export type PrimaryReads = "true" | "false" | "fallback";

export interface DatabaseConfig {
  name: string;
  host: string;
  port: number;
  dbname: string;
  user?: string;
  password?: string;
  pool_mode?: PoolMode;
  pool_size?: number;
  min_pool_size?: number;
  max_db_connections?: number;
  /** Overrides the global auth_user for this database (PgBouncer's per-database auth_user). */
  auth_user?: string;
  auth_dbname?: string;
  auth_query?: string;
  /** Bearer token for GET /listen/CHANNEL?database=NAME on the HTTP endpoint (SSE or WebSocket); absent: off. */
  listen_token?: string;
  /** Every host of the entry, in the order given, when it names more than one; host and port are then the first. */
  hosts?: import("./hosts.ts").HostAddress[];
  /** With several hosts: primary (default) sends clients to the current primary, replica spreads them over replicas. */
  role?: DatabaseRole;
  /** With role = replica: may the primary take reads too (default fallback: only when no replica can). */
  primary_reads?: PrimaryReads;
  /** With several hosts, in transaction mode: read-only transactions and autocommit reads go to a replica. */
  read_write_split?: boolean;
  /** Patroni REST addresses, one per host in the same order ("" for none): GET /primary answers 200 on the leader only. */
  patroni_url?: string[];
}

export interface UserConfig {
  name: string;
  /** Plain text, "md5" + 32 hex digits, or a "SCRAM-SHA-256$..." verifier as PostgreSQL stores them. */
  password?: string;
  pool_mode?: PoolMode;
  max_user_connections?: number;
  /** How this user proves its password, overriding auth_type (and auth_hba_file's method). */
  auth_type?: Exclude<AuthType, "hba">;
}

export interface Config {
  settings: Settings;
  databases: Map<string, DatabaseConfig>;
  users: Map<string, UserConfig>;
  source: { configFile: string | null };
  /** The TLS files and choices of each side, read and checked with the config (config/tls.ts); absent: both sides off. */
  tls?: import("./tls.ts").TlsConfig;
  /** auth_file's users and secrets (PgBouncer's userlist.txt), read with the config; empty without auth_file. */
  authFile?: Map<string, string>;
  /** auth_hba_file's rules, read with the config when auth_type is hba. */
  hba?: import("./hba-file.ts").HbaRule[];
  /** Settings read from a pgbouncer.ini that pgbun does not implement: reported once at start. */
  notices?: string[];
}

export type SettingKind = "int" | "seconds" | "bool" | "string" | "list" | "address" | "address?" | "enum";

export interface SettingSpec<T = unknown> {
  kind: SettingKind;
  default: T;
  /** Bounds of an int or seconds setting. */
  min?: number;
  max?: number;
  /** The choices of an enum setting. */
  values?: readonly string[];
  /** A string setting's form, and the end of the error line when a value does not match it. */
  pattern?: RegExp;
  patternHelp?: string;
  /** One line for --help and the example config. */
  help: string;
}

export const POOL_MODES = ["session", "transaction", "statement"] as const satisfies readonly PoolMode[];
export const AUTH_TYPES = ["trust", "plain", "md5", "scram-sha-256", "hba"] as const satisfies readonly AuthType[];
/** PgBouncer's default auth_query: a role's password, NULL once it has expired; no row for a role that cannot log in. */
export const DEFAULT_AUTH_QUERY = "SELECT rolname, CASE WHEN rolvaliduntil < now() THEN NULL ELSE rolpassword END FROM pg_authid WHERE rolname=$1 AND rolcanlogin";
export const TLS_MODES = ["disable", "allow", "prefer", "require", "verify-ca", "verify-full"] as const satisfies readonly TlsMode[];
const LOG_LEVELS = ["debug", "info", "warn", "error"] as const satisfies readonly LogLevel[];
const LOG_FORMATS = ["text", "json"] as const satisfies readonly LogFormat[];

/** Upper bounds exist to catch a slipped digit, not to limit real deployments. */
const POOL_MAX = 100_000;
const CONN_MAX = 10_000_000;

const int = (d: number, min: number, max: number, help: string): SettingSpec<number> => ({ kind: "int", default: d, min, max, help });
const seconds = (d: number, help: string, min = 0): SettingSpec<number> => ({ kind: "seconds", default: d, min, help });
const bool = (d: boolean, help: string): SettingSpec<boolean> => ({ kind: "bool", default: d, help });
function oneOf<T extends string>(values: readonly T[], d: NoInfer<T>, help: string): SettingSpec<T> {
  return { kind: "enum", default: d, values, help };
}

/** In the order --help and SHOW CONFIG list them. */
export const SETTINGS: { readonly [K in keyof Settings]: SettingSpec<Settings[K]> } = {
  listen: { kind: "address", default: { host: "127.0.0.1", port: 6432 }, help: "host:port clients connect to; port 0 picks a free one" },
  pool_mode: oneOf(POOL_MODES, "session", "when a server goes back to the pool: after the client leaves, each transaction, or each statement"),
  default_pool_size: int(20, 1, POOL_MAX, "server connections per (database, user) pool"),
  min_pool_size: int(0, 0, POOL_MAX, "server connections each pool keeps open even when idle"),
  reserve_pool_size: int(0, 0, POOL_MAX, "extra server connections a pool may open when clients have waited too long"),
  max_client_conn: int(100, 1, CONN_MAX, "client connections accepted in all; beyond it new clients get an error"),
  max_db_connections: int(0, 0, CONN_MAX, "server connections per database across all its users (0: unlimited)"),
  auth_type: oneOf(AUTH_TYPES, "scram-sha-256", "how clients prove their password: scram-sha-256, md5, plain (cleartext) or trust (none)"),
  server_reset_query: { kind: "string", default: "DISCARD ALL", help: "run on a server before another session-mode client gets it (empty: none)" },
  server_reset_query_always: bool(false, "also run server_reset_query in transaction and statement mode"),
  query_wait_timeout: seconds(120, "longest a client waits for a free server before it gets an error"),
  server_connect_timeout: seconds(15, "longest connecting and logging in to a server may take"),
  server_login_retry: seconds(15, "after a failed server login, wait this long before trying again"),
  server_idle_timeout: seconds(600, "close a server left unused in the pool this long (above min_pool_size)"),
  server_lifetime: seconds(3600, "close a server this old once it is back in the pool"),
  client_idle_timeout: seconds(0, "close a client connection idle outside a transaction this long"),
  client_login_timeout: seconds(60, "close a client that has not logged in within this time"),
  idle_transaction_timeout: seconds(0, "close a client that sits idle inside an open transaction this long"),
  query_timeout: seconds(0, "close a client whose query has run longer than this"),
  shutdown_timeout: seconds(30, "on SIGTERM, how long transactions in flight may take to finish"),
  max_packet_size: int(1 << 30, 1024, 2 ** 31 - 1, "largest protocol message accepted, in bytes (PostgreSQL's own limit is 1 GB)"),
  max_prepared_statements: int(200, 0, 1_000_000, "prepared statements tracked per server in transaction and statement mode (0: off)"),
  prepare_unnamed: bool(false, "transaction and statement mode: an unnamed Parse seen before binds a statement pgbun prepared on that server, so PostgreSQL skips parse and planning"),
  admin_users: { kind: "list", default: [], help: "users allowed every command on the admin console (database pgbun)" },
  stats_users: { kind: "list", default: [], help: "users allowed the read-only SHOW commands on the admin console" },
  stats_listen: { kind: "address?", default: null, help: "host:port of the HTTP /metrics, /healthz and /stats endpoint (unset or empty: off)" },
  stats_period: seconds(60, "how often pool statistics are logged and averaged", 1),
  log_level: oneOf(LOG_LEVELS, "info", "least severe log line written"),
  log_format: oneOf(LOG_FORMATS, "text", "log lines as text or one JSON object each"),
  log_connections: bool(true, "log each client login"),
  log_disconnections: bool(true, "log each client disconnection with its reason"),
  log_pooler_errors: bool(true, "log the errors pgbun itself sends to clients"),
  application_name_add_host: bool(false, "append the client's host and port to application_name on the server"),
  workers: int(1, 1, 256, "processes sharing the listen port with SO_REUSEPORT"),
  tcp_keepalive: bool(true, "TCP keepalive on client and server sockets"),
  client_tls_sslmode: oneOf(TLS_MODES, "disable", "TLS from clients: disable (answer N), allow/prefer (TLS when asked), require (refuse plain text), verify-ca/verify-full (also a client certificate signed by client_tls_ca_file)"),
  client_tls_key_file: { kind: "string", default: "", help: "private key (PEM) of the certificate pgbun shows clients" },
  client_tls_cert_file: { kind: "string", default: "", help: "certificate (PEM, chain allowed) pgbun shows clients" },
  client_tls_ca_file: { kind: "string", default: "", help: "CA certificates (PEM) that client certificates must be signed by (verify-ca, verify-full)" },
  client_tls_protocols: { kind: "string", default: "secure", help: "TLS versions clients may use: tlsv1.0, tlsv1.1, tlsv1.2, tlsv1.3, all, secure (1.2 and 1.3), legacy (all)" },
  client_tls_ciphers: { kind: "string", default: "default", help: "TLS 1.2 cipher list in OpenSSL syntax, or default, secure, fast, normal, compat, legacy, insecure, all" },
  server_tls_sslmode: oneOf(TLS_MODES, "prefer", "TLS to PostgreSQL: disable, allow (plain text, TLS if refused), prefer (TLS if offered), require, verify-ca (and a trusted certificate), verify-full (and the host name)"),
  server_tls_ca_file: { kind: "string", default: "", help: "CA certificates (PEM) server certificates are checked against (verify-ca, verify-full; empty: the system's)" },
  server_tls_key_file: { kind: "string", default: "", help: "private key (PEM) of the client certificate pgbun shows PostgreSQL (empty: none)" },
  server_tls_cert_file: { kind: "string", default: "", help: "client certificate (PEM) pgbun shows PostgreSQL, for its cert authentication (empty: none)" },
  server_tls_protocols: { kind: "string", default: "secure", help: "TLS versions used towards PostgreSQL, as client_tls_protocols" },
  server_tls_ciphers: { kind: "string", default: "default", help: "TLS 1.2 cipher list towards PostgreSQL, as client_tls_ciphers" },
  auth_file: { kind: "string", default: "", help: "PgBouncer userlist.txt: \"user\" \"secret\" lines (plain, md5 or SCRAM secrets), re-read at reload (empty: none)" },
  auth_hba_file: { kind: "string", default: "", help: "pg_hba.conf-style rules choosing each login's method when auth_type is hba" },
  auth_user: { kind: "string", default: "", help: "user that looks up unknown users' passwords in PostgreSQL with auth_query (empty: off)" },
  auth_query: { kind: "string", default: DEFAULT_AUTH_QUERY, help: "query run as auth_user with the user name as $1; returns the name and the password" },
  auth_dbname: { kind: "string", default: "", help: "database auth_query runs in (empty: the database the client asked for)" },
  autodb_idle_timeout: seconds(3600, "free a pool the wildcard database [databases.\"*\"] created once unused this long"),
  unix_socket_dir: { kind: "string", default: "", help: "also listen on a Unix socket .s.PGSQL.PORT in this folder (empty: off)" },
  unix_socket_mode: { kind: "string", default: "0777", help: "file mode of the Unix socket, in octal" },
  role_check_interval: seconds(1, "databases with several hosts: how often each host's role (pg_is_in_recovery()) and lag are checked", 0.05),
  primary_wait_timeout: seconds(10, "databases with several hosts: how long a client waits for a primary (or a usable replica) before it gets an error"),
  ban_timeout: seconds(60, "databases with several hosts: a replica whose health check failed gets no reads for this long"),
  max_replica_lag: {
    kind: "string",
    default: "0",
    pattern: LAG_PATTERN,
    patternHelp: "expected 0 (off), bytes of WAL (16MB, 512kB, 1048576) or seconds of replay delay (5s, 500ms)",
    help: "a replica further behind the primary than this gets no reads until it catches up (0: off)",
  },
};

export const SETTING_KEYS = Object.keys(SETTINGS) as Array<keyof Settings>;

export function isSettingKey(key: string): key is keyof Settings {
  return Object.hasOwn(SETTINGS, key);
}

/** The end of the one-line error: what a setting accepts. */
export function describeAllowed(spec: SettingSpec): string {
  switch (spec.kind) {
    case "enum":
      return `expected one of ${(spec.values ?? []).join(", ")}`;
    case "int":
      return `expected an integer from ${spec.min} to ${spec.max}`;
    case "seconds":
      return `expected a number of seconds, ${spec.min === 0 ? "0 (off) or more" : `at least ${spec.min}`}, fractions allowed`;
    case "bool":
      return "expected true or false";
    case "list":
      return "expected user names, comma-separated (or a TOML array in the file)";
    case "address":
      return "expected host:port, e.g. 127.0.0.1:6432 or [::1]:6432, with a port from 0 to 65535";
    case "address?":
      return "expected host:port, e.g. 127.0.0.1:6480, or empty for off";
    case "string":
      return spec.patternHelp ?? "expected text";
  }
}

const addressSchema = z.object({ host: z.string().min(1), port: z.number().int().min(0).max(65535) });

/** Checks one setting once strings from flags and the environment were turned into numbers, booleans and addresses. */
export function zodFor(spec: SettingSpec): z.ZodTypeAny {
  switch (spec.kind) {
    case "enum":
      return z.enum(spec.values as [string, ...string[]]);
    case "int":
      return z.number().int().min(spec.min ?? 0).max(spec.max ?? Number.MAX_SAFE_INTEGER);
    case "seconds":
      return z.number().finite().min(spec.min ?? 0);
    case "bool":
      return z.boolean();
    case "list":
      return z.array(z.string().min(1));
    case "address":
      return addressSchema;
    case "address?":
      return addressSchema.nullable();
    case "string":
      return spec.pattern === undefined ? z.string() : z.string().regex(spec.pattern);
  }
}

const poolModeSchema = z.enum(POOL_MODES);
const md5Looking = /^md5[0-9a-fA-F]+$/;
const md5Hash = /^md5[0-9a-f]{32}$/;
const scramVerifier = /^SCRAM-SHA-256\$[1-9][0-9]*:[A-Za-z0-9+/]+=*\$[A-Za-z0-9+/]+=*:[A-Za-z0-9+/]+=*$/;

/** A [databases.NAME] section; dbname defaults to NAME once the name is known. */
export const databaseSchema = z
  .object({
    host: z.string().min(1).default("127.0.0.1"),
    port: z.number().int().min(1).max(65535).default(5432),
    dbname: z.string().min(1).optional(),
    user: z.string().min(1).optional(),
    password: z.string().optional(),
    pool_mode: poolModeSchema.optional(),
    pool_size: z.number().int().min(1).max(POOL_MAX).optional(),
    min_pool_size: z.number().int().min(0).max(POOL_MAX).optional(),
    max_db_connections: z.number().int().min(0).max(CONN_MAX).optional(),
    auth_user: z.string().min(1).optional(),
    auth_dbname: z.string().min(1).optional(),
    auth_query: z.string().min(1).optional(),
    listen_token: z.string().min(8).optional(),
    role: z.enum(["primary", "replica"]).optional(),
    primary_reads: z
      .union([z.boolean(), z.enum(["true", "false", "fallback"])])
      .transform((v): PrimaryReads => (v === true ? "true" : v === false ? "false" : v))
      .optional(),
    read_write_split: z.boolean().optional(),
    patroni_url: z.union([z.string(), z.array(z.string())]).transform((v) => (typeof v === "string" ? v.split(",").map((u) => u.trim()) : v)).optional(),
  })
  .strict()
  // Without a user pgbun logs in as each client's own user, so a lone password would be sent for users it was never meant for.
  .refine((d) => d.password === undefined || d.user !== undefined, {
    path: ["password"],
    message: "a password needs a user: add user = \"...\" to this database, or remove the password",
  });

/** A [users.NAME] section: the password clients give pgbun, and per-user limits. */
export const userSchema = z
  .object({
    password: z
      .string()
      // Plain text is always allowed; only what looks like a stored hash must be a whole one, or no password would ever match it.
      .refine((p) => !md5Looking.test(p) || md5Hash.test(p), "an md5 password is \"md5\" followed by 32 lowercase hex digits, md5(password + user)")
      .refine((p) => !p.startsWith("SCRAM-SHA-256$") || scramVerifier.test(p), "a SCRAM verifier is SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>, as in pg_authid")
      .optional(),
    pool_mode: poolModeSchema.optional(),
    max_user_connections: z.number().int().min(0).max(CONN_MAX).optional(),
    auth_type: z.enum(["trust", "plain", "md5", "scram-sha-256"]).optional(),
  })
  .strict();

export const DATABASE_KEYS = Object.keys(databaseSchema.innerType().shape);
export const USER_KEYS = Object.keys(userSchema.shape);
