// auth_hba_file read: pg_hba.conf's syntax (fields, quoting, comma lists, @file, continued lines) turned into rules,
// and every entry pgbun cannot honour refused at load, naming the line and what to write instead.

import { existsSync, readFileSync } from "node:fs";
import { isIP } from "node:net";
import { dirname, isAbsolute, resolve } from "node:path";
import { ConfigError } from "./errors.ts";

/** What a line may ask of a login; "password" is cleartext, as in pg_hba.conf. */
export type HbaMethod = "trust" | "reject" | "password" | "md5" | "scram-sha-256" | "cert";
export type ConnType = "local" | "host" | "hostssl" | "hostnossl";

export interface HbaRule {
  line: number;
  type: ConnType;
  databases: NameList;
  users: NameList;
  /** null for local lines and for "all". */
  address: { bytes: Uint8Array; mask: Uint8Array } | null;
  method: HbaMethod;
}

/** A database or user field: its names and keywords (a quoted "all" is a name, not the keyword). */
export interface NameList {
  names: Set<string>;
  all: boolean;
  sameuser: boolean;
  replication: boolean;
}

const METHODS: readonly HbaMethod[] = ["trust", "reject", "password", "md5", "scram-sha-256", "cert"];
const TYPES: readonly ConnType[] = ["local", "host", "hostssl", "hostnossl"];
/** Methods pg_hba.conf knows that pgbun cannot carry out, with what to use instead. */
const UNSUPPORTED_METHODS: Record<string, string> = {
  peer: "pgbun cannot read the peer's credentials from its Unix socket: use trust or a password method on local lines",
  ident: "use a password method",
  gss: "use a password method or cert",
  sspi: "use a password method or cert",
  ldap: "use a password method (auth_query can look passwords up in PostgreSQL)",
  radius: "use a password method",
  pam: "use a password method",
  bsd: "use a password method",
};

/** The rules of an hba file's text, or a ConfigError naming the file, the line and the fix. */
export function parseHba(text: string, path: string): HbaRule[] {
  const rules: HbaRule[] = [];
  const lines = text.split(/\r?\n/);
  for (let i = 0; i < lines.length; i++) {
    const lineNo = i + 1;
    let line = lines[i]!;
    // PostgreSQL 16 joins a line ending in a backslash with the next.
    while (line.endsWith("\\") && i + 1 < lines.length) line = line.slice(0, -1) + " " + lines[++i]!;
    const fields = tokenize(line, path, lineNo);
    if (fields.length === 0) continue;
    rules.push(ruleOf(fields, path, lineNo));
  }
  return rules;
}

interface Field {
  text: string;
  /** Each comma-separated item, with whether it was quoted (a quoted "all" is a name, not the keyword). */
  items: Array<{ value: string; quoted: boolean }>;
}

function tokenize(line: string, path: string, lineNo: number): Field[] {
  const fields: Field[] = [];
  let i = 0;
  while (i < line.length) {
    while (i < line.length && /\s/.test(line[i]!)) i++;
    if (i >= line.length || line[i] === "#") break;
    const field: Field = { text: "", items: [] };
    let item = "";
    let quoted = false;
    let inQuotes = false;
    for (; i < line.length; i++) {
      const ch = line[i]!;
      if (inQuotes) {
        if (ch === '"') inQuotes = false;
        else item += ch;
      } else if (ch === '"') {
        inQuotes = true;
        quoted = true;
      } else if (ch === ",") {
        field.items.push({ value: item, quoted });
        item = "";
        quoted = false;
      } else if (/\s/.test(ch) || ch === "#") {
        break;
      } else {
        item += ch;
      }
      field.text += ch;
    }
    if (inQuotes) throw hbaError(path, lineNo, "a double quote is not closed");
    field.items.push({ value: item, quoted });
    fields.push(field);
  }
  return fields;
}

function ruleOf(fields: Field[], path: string, lineNo: number): HbaRule {
  const bad = (why: string) => hbaError(path, lineNo, why);
  const typeText = fields[0]!.text;
  const type = typeText as ConnType;
  if (!TYPES.includes(type)) {
    const gss = typeText === "hostgssenc" || typeText === "hostnogssenc";
    throw bad(`connection type "${fields[0]!.text}" is not supported${gss ? " (pgbun offers no GSSAPI encryption)" : ""}; use local, host, hostssl or hostnossl`);
  }
  const need = type === "local" ? 4 : 5;
  if (fields.length < need) throw bad(`a ${type} line needs ${type === "local" ? "database, user and method" : "database, user, address and method"}`);
  const databases = names(fields[1]!, "database", path, lineNo);
  const users = names(fields[2]!, "user", path, lineNo);
  let at = 3;
  let address: HbaRule["address"] = null;
  if (type !== "local") {
    const a = parseAddress(fields[3]!.text, fields[4]?.text, bad);
    address = a.address;
    at = a.usedMask ? 5 : 4;
  }
  const methodField = fields[at];
  if (methodField === undefined) throw bad("the authentication method is missing");
  const method = methodField.text;
  if (!METHODS.includes(method as HbaMethod)) {
    const instead = UNSUPPORTED_METHODS[method];
    throw bad(instead ? `method ${method} is not supported by pgbun: ${instead}` : `unknown method "${method}"; pgbun supports ${METHODS.join(", ")}`);
  }
  const options = fields.slice(at + 1).map((f) => f.text);
  for (const o of options) {
    // clientcert is what a cert line implies anyway; anything else would change the meaning silently.
    if (/^clientcert=(verify-full|verify-ca)$/.test(o)) continue;
    throw bad(`option ${o} is not supported (pgbun knows no user name maps or method options); remove it`);
  }
  return { line: lineNo, type, databases, users, address, method: method as HbaMethod };
}

function names(field: Field, what: "database" | "user", path: string, lineNo: number): NameList {
  const out: NameList = { names: new Set(), all: false, sameuser: false, replication: false };
  for (const { value, quoted } of field.items) {
    if (value === "") throw hbaError(path, lineNo, `an empty ${what} name`);
    if (quoted) {
      out.names.add(value);
    } else if (value.startsWith("@")) {
      for (const n of includedNames(value.slice(1), path, lineNo)) out.names.add(n);
    } else if (value === "all") {
      out.all = true;
    } else if (what === "database" && (value === "sameuser" || value === "replication")) {
      out[value] = true;
    } else if (what === "user" && value.startsWith("+")) {
      throw hbaError(path, lineNo, `group membership (${value}) is not supported, as in PgBouncer; list the users, or put them in a file and write @file`);
    } else if (what === "database" && (value === "samerole" || value === "samegroup")) {
      throw hbaError(path, lineNo, `${value} is not supported, as in PgBouncer; list the databases`);
    } else {
      out.names.add(value);
    }
  }
  return out;
}

/** @file: names separated by whitespace or commas, the file relative to the hba file's folder as in PostgreSQL. */
function includedNames(file: string, path: string, lineNo: number): string[] {
  const full = isAbsolute(file) ? file : resolve(dirname(path), file);
  if (!existsSync(full)) throw hbaError(path, lineNo, `@${file}: ${full} does not exist`);
  const out: string[] = [];
  for (const raw of readFileSync(full, "utf8").split(/\r?\n/)) {
    const line = raw.replace(/#.*$/, "");
    for (const n of line.split(/[\s,]+/)) if (n !== "") out.push(n.replace(/^"(.*)"$/, "$1"));
  }
  return out;
}

function parseAddress(text: string, next: string | undefined, bad: (why: string) => ConfigError): { address: HbaRule["address"]; usedMask: boolean } {
  if (text === "all") return { address: null, usedMask: false };
  if (text === "samehost" || text === "samenet") throw bad(`${text} is not supported, as in PgBouncer; write the addresses in CIDR form`);
  const slash = text.indexOf("/");
  const ip = slash < 0 ? text : text.slice(0, slash);
  const bytes = ipBytes(ip);
  if (bytes === null) throw bad(`"${text}" is not an IP address in CIDR form (host names are not supported, as in PgBouncer)`);
  const bits = bytes.length * 8;
  if (slash >= 0) {
    const n = Number(text.slice(slash + 1));
    if (!/^\d+$/.test(text.slice(slash + 1)) || n > bits) throw bad(`"${text}" has an invalid prefix length (0 to ${bits})`);
    return { address: { bytes, mask: prefixMask(n, bytes.length) }, usedMask: false };
  }
  // Address and netmask as two fields, or a bare address (PostgreSQL then wants a mask; a lone address means itself).
  const mask = next === undefined ? null : ipBytes(next);
  if (mask !== null && mask.length === bytes.length) return { address: { bytes, mask }, usedMask: true };
  throw bad(`"${text}" needs a prefix length (e.g. ${text}/${bits}) or a netmask field`);
}

function prefixMask(n: number, len: number): Uint8Array {
  const mask = new Uint8Array(len);
  for (let i = 0; i < len; i++) mask[i] = n >= (i + 1) * 8 ? 0xff : n <= i * 8 ? 0 : (0xff << (8 - (n - i * 8))) & 0xff;
  return mask;
}

/** The 4 or 16 bytes of an IP address; null when it is not one. */
export function ipBytes(ip: string): Uint8Array | null {
  const kind = isIP(ip);
  if (kind === 4) return Uint8Array.from(ip.split(".").map(Number));
  if (kind !== 6) return null;
  let text = ip.replace(/%.*$/, "");
  // A trailing dotted quad becomes two groups.
  const quad = /(\d+\.\d+\.\d+\.\d+)$/.exec(text);
  if (quad) {
    const b = quad[1]!.split(".").map(Number);
    text = text.slice(0, quad.index) + ((b[0]! << 8) | b[1]!).toString(16) + ":" + ((b[2]! << 8) | b[3]!).toString(16);
  }
  const [head = "", tail] = text.split("::");
  const h = head === "" ? [] : head.split(":");
  const t = tail === undefined || tail === "" ? [] : tail.split(":");
  const groups = tail === undefined ? h : [...h, ...Array(8 - h.length - t.length).fill("0"), ...t];
  const out = new Uint8Array(16);
  groups.forEach((g, i) => {
    const v = parseInt(g, 16);
    out[2 * i] = v >> 8;
    out[2 * i + 1] = v & 0xff;
  });
  return out;
}

function hbaError(path: string, lineNo: number, why: string): ConfigError {
  return new ConfigError(`auth_hba_file ${path} line ${lineNo}: ${why}`, { key: "auth_hba_file", source: "file", origin: path });
}
