// Turning what a flag, an environment variable or a TOML value holds into the type a setting wants, before zod checks it.

import type { Address, SettingSpec } from "./schema.ts";

const NUMBER = /^[+-]?(\d+(\.\d*)?|\.\d+)$/;
const TRUE = new Set(["true", "1", "yes", "on"]);
const FALSE = new Set(["false", "0", "no", "off"]);

/**
 * The value in the setting's type, or the input unchanged when it cannot be read that way, so that zod rejects it and the
 * error shows what the user typed rather than a half-converted value.
 */
export function coerce(spec: SettingSpec, raw: unknown): unknown {
  switch (spec.kind) {
    case "int":
    case "seconds":
      return typeof raw === "string" && NUMBER.test(raw.trim()) ? Number(raw.trim()) : raw;
    case "bool":
      if (typeof raw === "string") {
        const v = raw.trim().toLowerCase();
        return TRUE.has(v) ? true : FALSE.has(v) ? false : raw;
      }
      // PgBouncer's own config writes booleans as 0 and 1.
      return raw === 1 ? true : raw === 0 ? false : raw;
    case "list":
      if (typeof raw === "string") return raw.split(",").map((s) => s.trim()).filter((s) => s !== "");
      return raw;
    case "address":
    case "address?":
      if (typeof raw !== "string") return raw;
      if (raw.trim() === "" && spec.kind === "address?") return null;
      return parseAddress(raw) ?? raw;
    case "string":
      return typeof raw === "number" ? String(raw) : raw;
    case "enum":
      return typeof raw === "string" ? raw.trim().toLowerCase() : raw;
  }
}

/** Whether an empty environment variable means "unset": compose files pass `${X:-}` through as "" for settings left alone. */
export function emptyMeansUnset(spec: SettingSpec): boolean {
  return spec.kind !== "string" && spec.kind !== "list" && spec.kind !== "address?";
}

/** "host:port", "[v6]:port", or "*:port" for every interface, as PgBouncer's listen_addr = * means. */
export function parseAddress(text: string): Address | null {
  const s = text.trim();
  const m = /^(?:\[([^\]]+)\]|([^:[\]]+)):(\d{1,5})$/.exec(s);
  if (!m) return null;
  const host = m[1] ?? m[2] ?? "";
  return { host: host === "*" ? "0.0.0.0" : host, port: Number(m[3]) };
}

export function formatAddress(a: Address): string {
  return a.host.includes(":") ? `[${a.host}]:${a.port}` : `${a.host}:${a.port}`;
}
