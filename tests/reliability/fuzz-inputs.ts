// The fuzzer's inputs: malformed and mutated frontend traffic for before login (startup phase) and after (a session).

import { Rng } from "./random.ts";
import { Body, concatBytes, encode, fe, type Frame, PROTOCOL_3_0 } from "./wire.ts";

export interface FuzzInput {
  /** Its position in the run; with the run's seed it regenerates the same bytes. */
  id: number;
  /** "startup": sent on a fresh connection; "session": sent on a logged-in one. */
  phase: "startup" | "session";
  /** The generator and mutations that made it, for the summary and reproductions. */
  kind: string;
  /** Written in order, a tick or a few milliseconds apart, so the framer sees messages split anywhere. */
  chunks: Uint8Array[];
  /** The input may leave a COPY FROM STDIN running: the next sentinel starts with CopyFail. */
  inCopy: boolean;
}

// Harmless statements (statement_timeout caps the sleeps even after a mutation changes a digit).
const SQL = [
  "SELECT 1",
  "SELECT $1::int + 1",
  "SELECT pg_sleep(0.01)",
  "SELECT 1/0",
  "BEGIN",
  "COMMIT",
  "ROLLBACK",
  "BEGIN; SELECT 1; COMMIT",
  "BEGIN; SELECT 1/0; COMMIT",
  "SET application_name = 'fuzz'",
  "SELECT repeat('x', 200000)",
  "SELECT g, md5(g::text) FROM generate_series(1, 500) g",
  "COPY (SELECT generate_series(1, 100)) TO STDOUT",
  "PREPARE fz AS SELECT 1",
  "EXECUTE fz",
  "DEALLOCATE ALL",
  "LISTEN fuzz",
  "DISCARD ALL",
  "SELECT pg_advisory_xact_lock(1)",
  "",
];
const COPY_IN = "COPY fuzz_copy FROM STDIN";

type Template = { frames: Frame[]; inCopy: boolean; name: string };

/** A well-formed session sequence for mutation to start from. */
function template(rng: Rng): Template {
  const sql = () => rng.pick(SQL);
  const name = () => (rng.chance(0.5) ? "" : rng.pick(["s1", "s2", "fz"]));
  switch (rng.int(7)) {
    case 0:
      return { name: "query", frames: [fe.query(sql())], inCopy: false };
    case 1: {
      const s = name();
      const text = sql();
      const params = text.includes("$1") ? [String(rng.int(1000))] : [];
      const frames = [fe.parse(s, text), fe.bind("", s, params), fe.describe("P", ""), fe.execute("", rng.pick([0, 0, 1, 5]))];
      return { name: "extended", frames: rng.chance(0.8) ? [...frames, fe.sync()] : [...frames, fe.flush()], inCopy: false };
    }
    case 2: {
      const frames: Frame[] = [];
      for (let i = rng.range(2, 4); i > 0; i--) frames.push(fe.parse("", sql()), fe.bind("", "", []), fe.execute(), fe.sync());
      return { name: "pipeline", frames, inCopy: false };
    }
    case 3: {
      const rows = Array.from({ length: rng.range(0, 5) }, () => fe.copyData(`${rng.int(100)}\tfz\n`));
      const end = rng.weighted([[5, fe.copyDone()], [2, fe.copyFail("fuzz")], [1, null]] as const);
      return { name: "copy-in", frames: [fe.query(COPY_IN), ...rows, ...(end ? [end] : [])], inCopy: end === null };
    }
    case 4: {
      const frames = [fe.parse("", COPY_IN), fe.bind("", ""), fe.execute(), fe.sync(), fe.copyData("1\tx\n"), fe.copyDone()];
      return { name: "copy-in-extended", frames, inCopy: false };
    }
    case 5:
      return { name: "close-describe", frames: [fe.describe("S", name()), fe.close(rng.pick(["S", "P"] as const), name()), fe.sync()], inCopy: false };
    default:
      // int4pl (oid 177): 2 + 3
      return { name: "function-call", frames: [fe.functionCall(177, ["2", "3"]), fe.query("SELECT 1")], inCopy: false };
  }
}

// Declared lengths around the edges: below the header, off by one, past max_packet_size, near 1 GB, negative.
const LENGTHS = [0, 1, 3, 4, 5, 8, 255, 65536, 10_001, 0x3fffffff, 0x40000000, 0x7fffffff, -1, -0x80000000];

/** Changes one frame: its length, its tag, or bytes of its body. */
function mutateFrame(rng: Rng, f: Frame): [Frame, string] {
  switch (rng.int(5)) {
    case 0:
      return [{ ...f, length: rng.pick(LENGTHS) }, "length-edge"];
    case 1:
      return [{ ...f, length: f.body.length + 4 + rng.pick([-2, -1, 1, 2]) }, "length-off-by-one"];
    case 2:
      return f.tag === null ? [f, "none"] : [{ ...f, tag: rng.chance(0.5) ? rng.int(256) : rng.pick([...`BCDEFHPQSXcdfpz`]).charCodeAt(0) }, "tag"];
    case 3: {
      const body = f.body.slice();
      for (let i = rng.range(1, 3); i > 0 && body.length > 0; i--) {
        const at = rng.int(body.length);
        body[at] = rng.chance(0.5) ? rng.int(256) : body[at]! ^ (1 << rng.int(8));
      }
      return [{ ...f, body }, "body-bytes"];
    }
    default:
      // A body cut short or padded while the length still matches: fields read past their end.
      const body = rng.chance(0.5) ? f.body.subarray(0, rng.int(f.body.length + 1)) : concatBytes([f.body, rng.bytes(rng.range(1, 8))]);
      return [{ ...f, body }, "body-size"];
  }
}

/** Changes a sequence: per frame, the order of frames, or the encoded bytes themselves. */
function mutate(rng: Rng, frames: Frame[]): { bytes: Uint8Array; how: string[] } {
  const how: string[] = [];
  const fs = frames.slice();
  for (let n = rng.range(1, 3); n > 0; n--) {
    if (fs.length === 0) fs.push({ tag: rng.int(256), body: rng.bytes(rng.int(16)) });
    const i = rng.int(fs.length);
    switch (rng.int(4)) {
      case 0: {
        const [f, name] = mutateFrame(rng, fs[i]!);
        fs[i] = f;
        how.push(name);
        break;
      }
      case 1:
        if (rng.chance(0.5)) fs.splice(i, 1);
        else fs.splice(i, 0, fs[i]!);
        how.push("drop-or-repeat");
        break;
      case 2: {
        const j = rng.int(fs.length);
        [fs[i], fs[j]] = [fs[j]!, fs[i]!];
        how.push("swap");
        break;
      }
      default:
        fs.splice(i, 0, { tag: rng.int(256), body: rng.bytes(rng.int(16)) });
        how.push("random-frame");
    }
  }
  let bytes = encode(fs);
  if (rng.chance(0.3)) {
    // Byte-level damage across frame boundaries.
    bytes = bytes.slice();
    if (rng.chance(0.5) && bytes.length > 0) bytes = bytes.subarray(0, rng.int(bytes.length));
    else for (let k = rng.range(1, 4); k > 0 && bytes.length > 0; k--) bytes[rng.int(bytes.length)] = rng.int(256);
    how.push("bytes");
  }
  return { bytes, how };
}

/** Splits bytes into 1 to 4 chunks at random points (or none when short). */
function split(rng: Rng, bytes: Uint8Array): Uint8Array[] {
  if (bytes.length < 2 || rng.chance(0.5)) return [bytes];
  const cuts = Array.from({ length: rng.range(1, 3) }, () => rng.range(1, bytes.length - 1)).sort((a, b) => a - b);
  const out: Uint8Array[] = [];
  let at = 0;
  for (const c of cuts) {
    if (c > at) out.push(bytes.subarray(at, c));
    at = Math.max(at, c);
  }
  out.push(bytes.subarray(at));
  return out;
}

const LOGIN = { user: "app", database: "app" };

function startupBytes(rng: Rng): { kind: string; bytes: Uint8Array } {
  const weird = (): Record<string, string> =>
    rng.pick<Record<string, string>>([
      { ...LOGIN, application_name: "x".repeat(rng.pick([0, 63, 64, 5000])) },
      { ...LOGIN, options: rng.pick(["-c statement_timeout=1", "-c", "--search_path=x", "-c extra_float_digits=3 -c =="]) },
      { ...LOGIN, replication: rng.pick(["true", "database", "junk"]) },
      { user: "", database: "app" },
      { user: "app" },
      { user: "no_such_user", database: "app" },
      { user: "app", database: "no_such_db" },
      { user: "app", database: "pgbun" },
      { user: "app\u00ff\u0001", database: "app" },
      { ...LOGIN, _pq_: "1", "_pq_.protocol_extension": "on" },
      { ...LOGIN, client_encoding: rng.pick(["SQL_ASCII", "LATIN1", "nope", ""]) },
    ]);
  switch (rng.int(12)) {
    case 0:
      return { kind: "random-bytes", bytes: rng.bytes(rng.range(1, 64)) };
    case 1: {
      const { bytes, how } = mutate(rng, [fe.startup(LOGIN)]);
      return { kind: `startup-mutated:${how.join("+")}`, bytes };
    }
    case 2:
      return { kind: "startup-params", bytes: encode([fe.startup(weird())]) };
    case 3: {
      const version = rng.pick([0, 1 << 16, 2 << 16, PROTOCOL_3_0 + 1, PROTOCOL_3_0 + 2, PROTOCOL_3_0 + 0xffff, 4 << 16, 1234 << 16 | 5679]);
      return { kind: "startup-version", bytes: encode([fe.startup(LOGIN, version)]) };
    }
    case 4: {
      const body = new Body().int32(PROTOCOL_3_0).cstr("user").cstr("app").str("database").done(); // no terminators
      return { kind: "startup-unterminated", bytes: encode([{ tag: null, body }]) };
    }
    case 5: {
      const next = rng.pick([[fe.startup(LOGIN)], [fe.sslRequest()], [fe.gssencRequest()], [{ tag: null, body: rng.bytes(8) }], []]);
      return { kind: "ssl-then", bytes: concatBytes([encode([fe.sslRequest()]), encode(next), rng.chance(0.3) ? rng.bytes(16) : new Uint8Array(0)]) };
    }
    case 6:
      return { kind: "gssenc-then", bytes: encode([fe.gssencRequest(), ...(rng.chance(0.5) ? [fe.startup(LOGIN)] : [fe.sslRequest()])]) };
    case 7: {
      const f = fe.cancel(rng.int(0x7fffffff), rng.int(0x7fffffff));
      return { kind: "cancel", bytes: encode([rng.chance(0.7) ? f : { ...f, length: rng.pick([12, 20, 8]) }]) };
    }
    case 8:
      return { kind: "tagged-before-startup", bytes: encode([rng.pick([fe.terminate(), fe.query("SELECT 1"), fe.sync(), fe.password("apppass")])]) };
    case 9:
      return { kind: "startup-huge-length", bytes: encode([{ ...fe.startup(LOGIN), length: rng.pick([10_001, 0x3fffffff, 0x7fffffff, -1, 3, 7]) }]) };
    case 10: {
      // A good startup, then an authentication answer that is wrong in shape or content.
      const answer = rng.pick([
        fe.password("apppass"),
        fe.password(""),
        fe.saslInitial("SCRAM-SHA-256", new TextEncoder().encode("n,,n=,r=abc"), rng.pick([11, -1, 0x7fffffff, 1000])),
        fe.saslInitial("SCRAM-SHA-1", new TextEncoder().encode("n,,n=,r=abc")),
        fe.saslInitial("SCRAM-SHA-256", new TextEncoder().encode(rng.pick(["y,,n=,r=abc", "p=tls-server-end-point,,n=,r=a", "n,,n=,r=", "garbage"]))),
        fe.saslResponse(new TextEncoder().encode("c=biws,r=abc,p=AAAA")),
        { tag: 0x70, body: rng.bytes(rng.range(0, 40)) },
      ]);
      const frames = [fe.startup(LOGIN), rng.chance(0.7) ? answer : mutateFrame(rng, answer)[0]];
      return { kind: "auth-answer", bytes: encode(frames) };
    }
    default:
      return { kind: "startup-weird-params", bytes: encode([fe.startup(weird())]) };
  }
}

function sessionBytes(rng: Rng): { kind: string; bytes: Uint8Array; inCopy: boolean } {
  switch (rng.weighted([[6, "mutated"], [2, "valid"], [1, "random-tag"], [1, "huge"]] as const)) {
    case "valid": {
      const t = template(rng);
      return { kind: `valid:${t.name}`, bytes: encode(t.frames), inCopy: t.inCopy };
    }
    case "random-tag":
      return { kind: "random-tag", bytes: encode([{ tag: rng.int(256), body: rng.bytes(rng.int(32)) }]), inCopy: false };
    case "huge": {
      // A huge declared length and only the start of the body: pgbun must neither wait forever nor buffer the lot.
      const length = rng.pick([0x3fffffff, 0x40000000, 0x7fffffff, 50_000_000]);
      const header = encode([{ tag: rng.pick([0x51, 0x50, 0x64, 0x42]), body: new Uint8Array(0), length }]);
      return { kind: "huge-declared", bytes: concatBytes([header, rng.bytes(rng.range(0, 4096))]), inCopy: false };
    }
    default: {
      const t = template(rng);
      const { bytes, how } = mutate(rng, t.frames);
      return { kind: `mutated:${t.name}:${how.join("+")}`, bytes, inCopy: t.name.startsWith("copy-in") };
    }
  }
}

/** Input number `id` of the run seeded `seed`: the same pair always gives the same input, alone or in a run. */
export function makeInput(seed: number, id: number, sessionShare = 0.6): FuzzInput {
  const rng = new Rng((seed ^ Math.imul(id + 1, 0x9e3779b1)) >>> 0);
  if (rng.chance(sessionShare)) {
    const { kind, bytes, inCopy } = sessionBytes(rng);
    return { id, phase: "session", kind, chunks: split(rng, bytes), inCopy };
  }
  const { kind, bytes } = startupBytes(rng);
  return { id, phase: "startup", kind, chunks: split(rng, bytes), inCopy: false };
}
