// A bad setting: which key, what value, where it came from and what is allowed; shown as one line, exit code 2.

export type ConfigSource = "flag" | "env" | "file" | "default";

export class ConfigError extends Error {
  readonly code = "CONFIG_ERROR";
  constructor(
    message: string,
    readonly key?: string,
    readonly value?: unknown,
    readonly source?: ConfigSource,
    readonly allowed?: string,
  ) {
    super(message);
  }
}

export function flagName(key: string): string {
  return "--" + key.replace(/_/g, "-");
}

export function envName(key: string): string {
  return "PGBUN_" + key.toUpperCase();
}

export function formatConfigError(e: ConfigError): string {
  if (e.key === undefined) return `pgbun: ${e.message}`;
  const where =
    e.source === "flag" ? `flag ${flagName(e.key)}` : e.source === "env" ? `env ${envName(e.key)}` : e.source === "file" ? `config key ${e.key}` : e.key;
  const shown = typeof e.value === "string" ? JSON.stringify(e.value) : JSON.stringify(e.value) ?? String(e.value);
  return `pgbun: invalid value ${shown} for ${e.key} (${where}): ${e.allowed ?? e.message}`;
}
