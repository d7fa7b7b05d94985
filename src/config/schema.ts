// Every setting pgbun knows, with PgBouncer's names, meanings and defaults; the types the rest of pgbun reads.

import { z } from "zod";

export type PoolMode = "session" | "transaction" | "statement";
export type AuthType = "trust" | "plain" | "md5" | "scram-sha-256";
export interface Address {
  host: string;
  port: number;
}

export interface Settings {
  listen: Address;
  pool_mode: PoolMode;
  default_pool_size: number;
  min_pool_size: number;
  max_client_conn: number;
  auth_type: AuthType;
  server_reset_query: string;
  server_reset_query_always: boolean;
  query_wait_timeout: number;
  server_connect_timeout: number;
  server_idle_timeout: number;
  server_lifetime: number;
  client_idle_timeout: number;
  client_login_timeout: number;
  idle_transaction_timeout: number;
  query_timeout: number;
  shutdown_timeout: number;
  max_packet_size: number;
  max_prepared_statements: number;
  admin_users: string[];
  stats_users: string[];
  stats_listen: Address | null;
  stats_period: number;
  log_level: "debug" | "info" | "warn" | "error";
  log_format: "text" | "json";
  log_connections: boolean;
  log_disconnections: boolean;
  workers: number;
}

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
}

export interface UserConfig {
  name: string;
  password?: string;
  pool_mode?: PoolMode;
}

export interface Config {
  settings: Settings;
  databases: Map<string, DatabaseConfig>;
  users: Map<string, UserConfig>;
  source: { configFile: string | null };
}

type Kind = "int" | "seconds" | "bool" | "string" | "list" | "address" | "address?" | readonly string[];

export interface FieldSpec {
  kind: Kind;
  default: unknown;
  min?: number;
  max?: number;
  help: string;
}

const POOL_MODES = ["session", "transaction", "statement"] as const;

/** The [pgbun] section. Timeouts are seconds (fractions allowed); 0 disables, as in PgBouncer. */
export const SETTINGS: Record<keyof Settings, FieldSpec> = {
  listen: { kind: "address", default: "127.0.0.1:6432", help: "host:port clients connect to (port 0 picks a free one)" },
  pool_mode: { kind: POOL_MODES, default: "session", help: "when a server goes back to the pool: session, transaction or statement" },
  default_pool_size: { kind: "int", default: 20, min: 1, max: 100000, help: "server connections per (database, user) pool" },
  min_pool_size: { kind: "int", default: 0, min: 0, max: 100000, help: "server connections kept open even when idle" },
  max_client_conn: { kind: "int", default: 100, min: 1, max: 10000000, help: "client connections accepted in all; beyond it clients get an error" },
  auth_type: { kind: ["trust", "plain", "md5", "scram-sha-256"], default: "scram-sha-256", help: "how clients prove their password (trust: no password, local development only)" },
  server_reset_query: { kind: "string", default: "DISCARD ALL", help: "run on a server when a session-mode client leaves" },
  server_reset_query_always: { kind: "bool", default: false, help: "also run server_reset_query in transaction and statement mode" },
  query_wait_timeout: { kind: "seconds", default: 120, help: "longest a client waits for a free server before it gets an error" },
  server_connect_timeout: { kind: "seconds", default: 15, help: "longest a server connection and login may take" },
  server_idle_timeout: { kind: "seconds", default: 600, help: "close a server left idle in the pool this long (above min_pool_size)" },
  server_lifetime: { kind: "seconds", default: 3600, help: "close a server this old when it next becomes idle" },
  client_idle_timeout: { kind: "seconds", default: 0, help: "close a client connection idle (no transaction) this long" },
  client_login_timeout: { kind: "seconds", default: 60, help: "close a client that has not logged in within this time" },
  idle_transaction_timeout: { kind: "seconds", default: 0, help: "close a client idle inside an open transaction this long" },
  query_timeout: { kind: "seconds", default: 0, help: "close a client whose query runs longer than this" },
  shutdown_timeout: { kind: "seconds", default: 30, help: "on SIGTERM, how long open transactions may finish" },
  max_packet_size: { kind: "int", default: 1 << 30, min: 1024, max: 2 ** 31 - 1, help: "largest protocol message accepted, in bytes" },
  max_prepared_statements: { kind: "int", default: 200, min: 0, max: 1000000, help: "prepared statements cached per server connection in transaction/statement mode (0: off)" },
  admin_users: { kind: "list", default: [], help: "users allowed on the admin console (database pgbun)" },
  stats_users: { kind: "list", default: [], help: "users allowed read-only SHOW commands on the admin console" },
  stats_listen: { kind: "address?", default: null, help: "host:port of the HTTP /metrics, /healthz and /stats endpoint (off when unset)" },
  stats_period: { kind: "seconds", default: 60, help: "how often pool statistics are logged" },
  log_level: { kind: ["debug", "info", "warn", "error"], default: "info", help: "least severe log line written" },
  log_format: { kind: ["text", "json"], default: "text", help: "log line format" },
  log_connections: { kind: "bool", default: true, help: "log each client login" },
  log_disconnections: { kind: "bool", default: true, help: "log each client disconnection with its reason" },
  workers: { kind: "int", default: 1, min: 1, max: 64, help: "processes sharing the listen port (SO_REUSEPORT)" },
};

export function describeAllowed(spec: FieldSpec): string {
  const k = spec.kind;
  if (Array.isArray(k)) return `expected one of ${k.join(", ")}`;
  switch (k) {
    case "int":
      return `expected an integer from ${spec.min} to ${spec.max}`;
    case "seconds":
      return "expected a number of seconds, 0 or more";
    case "bool":
      return "expected true or false";
    case "list":
      return "expected a comma-separated list of names";
    case "address":
    case "address?":
      return "expected host:port with a port from 0 to 65535";
    default:
      return "expected text";
  }
}

/** The zod type checking one setting after strings from flags and environment were coerced. */
export function zodFor(spec: FieldSpec): z.ZodTypeAny {
  const k = spec.kind;
  if (Array.isArray(k)) return z.enum(k as [string, ...string[]]);
  switch (k) {
    case "int":
      return z.number().int().min(spec.min ?? 0).max(spec.max ?? Number.MAX_SAFE_INTEGER);
    case "seconds":
      return z.number().finite().min(0);
    case "bool":
      return z.boolean();
    case "list":
      return z.array(z.string().min(1));
    case "address":
      return addressSchema;
    case "address?":
      return addressSchema.nullable();
    default:
      return z.string();
  }
}

const addressSchema = z.object({ host: z.string().min(1), port: z.number().int().min(0).max(65535) });

const poolModeSchema = z.enum(POOL_MODES);

export const databaseSchema = z
  .object({
    host: z.string().min(1).default("127.0.0.1"),
    port: z.number().int().min(1).max(65535).default(5432),
    dbname: z.string().min(1).optional(),
    user: z.string().min(1).optional(),
    password: z.string().optional(),
    pool_mode: poolModeSchema.optional(),
    pool_size: z.number().int().min(1).optional(),
    min_pool_size: z.number().int().min(0).optional(),
  })
  .strict();

export const userSchema = z
  .object({
    password: z
      .string()
      .refine((p) => !/^md5/.test(p) || /^md5[0-9a-f]{32}$/.test(p) || !/^md5[0-9a-f]+$/.test(p), "an md5 hash is md5 followed by 32 hex digits")
      .optional(),
    pool_mode: poolModeSchema.optional(),
  })
  .strict();
