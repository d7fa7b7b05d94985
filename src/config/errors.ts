// ConfigError: a setting pgbun cannot start with, told in one line a user can act on (main.ts exits 2 on it).

/** Where a value came from; null when the error is not about one value (a missing file, no databases). */
export type ConfigSource = "flag" | "env" | "file";

export interface ConfigErrorDetails {
  /** The setting's name: a [pgbun] key, "databases.NAME.KEY", "users.NAME.KEY", "upstream", or the unknown flag or key. */
  key?: string;
  /** The value as received, already masked when it is a secret. */
  value?: unknown;
  source?: ConfigSource;
  /** Exactly where: "--pool-size", "PGBUN_POOL_MODE", or the config file's path. */
  origin?: string;
  /** What would have been accepted, e.g. "expected one of session, transaction, statement". */
  allowed?: string;
  cause?: unknown;
}

export class ConfigError extends Error {
  readonly code = "CONFIG_ERROR";
  readonly key: string | undefined;
  readonly value: unknown;
  readonly source: ConfigSource | undefined;
  readonly origin: string | undefined;
  readonly allowed: string | undefined;

  constructor(message: string, details: ConfigErrorDetails = {}) {
    super(message, details.cause === undefined ? undefined : { cause: details.cause });
    this.name = "ConfigError";
    this.key = details.key;
    this.value = details.value;
    this.source = details.source;
    this.origin = details.origin;
    this.allowed = details.allowed;
  }

  /** A value that is there but wrong: the message names the key, the value, where it came from and what is allowed. */
  static invalid(key: string, value: unknown, source: ConfigSource, origin: string, allowed: string, secret = false): ConfigError {
    const where = source === "file" ? `file key ${key} in ${origin}` : `${source} ${origin}`;
    // A password, or a hash as good as one, must not reach logs; its length is enough to spot a truncated paste.
    const shown = secret ? `(hidden, ${String(value).length} characters)` : show(value);
    return new ConfigError(`invalid value ${shown} for ${key} (${where}): ${allowed}`, { key, value: secret ? undefined : value, source, origin, allowed });
  }
}

export function formatConfigError(e: ConfigError): string {
  return `pgbun: ${e.message}`;
}

export function flagName(key: string): string {
  return "--" + key.replace(/_/g, "-");
}

export function envName(key: string): string {
  return "PGBUN_" + key.toUpperCase();
}

function show(value: unknown): string {
  if (typeof value === "string") return JSON.stringify(value);
  return JSON.stringify(value) ?? String(value);
}
