// Frontend messages as (tag, body) frames that may carry a wrong length, and their encoding to bytes.

const encoder = new TextEncoder();

/** One frontend message. tag null is a startup-phase packet (no tag byte); `length` overrides the declared length. */
export interface Frame {
  tag: number | null;
  body: Uint8Array;
  length?: number;
}

export const PROTOCOL_3_0 = 196608;
export const SSL_REQUEST = 80877103;
export const GSSENC_REQUEST = 80877104;
export const CANCEL_REQUEST = 80877102;

/** Appends bytes, C strings and big-endian integers; lengths are never computed here. */
export class Body {
  private parts: number[] = [];

  byte(v: number): this {
    this.parts.push(v & 0xff);
    return this;
  }
  int16(v: number): this {
    this.parts.push((v >>> 8) & 0xff, v & 0xff);
    return this;
  }
  int32(v: number): this {
    this.parts.push((v >>> 24) & 0xff, (v >>> 16) & 0xff, (v >>> 8) & 0xff, v & 0xff);
    return this;
  }
  bytes(b: Uint8Array): this {
    for (const x of b) this.parts.push(x);
    return this;
  }
  str(s: string): this {
    return this.bytes(encoder.encode(s));
  }
  cstr(s: string): this {
    return this.str(s).byte(0);
  }
  done(): Uint8Array {
    return Uint8Array.from(this.parts);
  }
}

const tagged = (letter: string, body: Body = new Body()): Frame => ({ tag: letter.charCodeAt(0), body: body.done() });

/** Builders for every frontend message the fuzzer sends; each returns one frame with a correct length. */
export const fe = {
  startup(params: Record<string, string>, version = PROTOCOL_3_0): Frame {
    const b = new Body().int32(version);
    for (const [k, v] of Object.entries(params)) b.cstr(k).cstr(v);
    return { tag: null, body: b.byte(0).done() };
  },
  sslRequest: (): Frame => ({ tag: null, body: new Body().int32(SSL_REQUEST).done() }),
  gssencRequest: (): Frame => ({ tag: null, body: new Body().int32(GSSENC_REQUEST).done() }),
  cancel: (pid: number, secret: number): Frame => ({ tag: null, body: new Body().int32(CANCEL_REQUEST).int32(pid).int32(secret).done() }),
  password: (text: string) => tagged("p", new Body().cstr(text)),
  saslInitial: (mechanism: string, data: Uint8Array, declared = data.length) => tagged("p", new Body().cstr(mechanism).int32(declared).bytes(data)),
  saslResponse: (data: Uint8Array) => tagged("p", new Body().bytes(data)),
  query: (sql: string) => tagged("Q", new Body().cstr(sql)),
  parse(name: string, sql: string, types: number[] = []): Frame {
    const b = new Body().cstr(name).cstr(sql).int16(types.length);
    for (const t of types) b.int32(t);
    return tagged("P", b);
  },
  bind(portal: string, stmt: string, params: Array<string | null> = [], resultFormats: number[] = []): Frame {
    const b = new Body().cstr(portal).cstr(stmt).int16(0).int16(params.length);
    for (const p of params) {
      if (p === null) b.int32(-1);
      else {
        const v = encoder.encode(p);
        b.int32(v.length).bytes(v);
      }
    }
    b.int16(resultFormats.length);
    for (const f of resultFormats) b.int16(f);
    return tagged("B", b);
  },
  describe: (kind: "S" | "P", name: string) => tagged("D", new Body().byte(kind.charCodeAt(0)).cstr(name)),
  execute: (portal = "", maxRows = 0) => tagged("E", new Body().cstr(portal).int32(maxRows)),
  close: (kind: "S" | "P", name: string) => tagged("C", new Body().byte(kind.charCodeAt(0)).cstr(name)),
  sync: () => tagged("S"),
  flush: () => tagged("H"),
  terminate: () => tagged("X"),
  copyData: (data: string) => tagged("d", new Body().str(data)),
  copyDone: () => tagged("c"),
  copyFail: (why: string) => tagged("f", new Body().cstr(why)),
  /** FunctionCall with text arguments and a text result. */
  functionCall(oid: number, args: string[]): Frame {
    const b = new Body().int32(oid).int16(0).int16(args.length);
    for (const a of args) {
      const v = encoder.encode(a);
      b.int32(v.length).bytes(v);
    }
    return tagged("F", b.int16(0));
  },
};

/** The wire bytes of `frames`, each with its declared length (the real one unless overridden). */
export function encode(frames: readonly Frame[]): Uint8Array {
  const size = frames.reduce((n, f) => n + (f.tag === null ? 4 : 5) + f.body.length, 0);
  const out = new Uint8Array(size);
  const view = new DataView(out.buffer);
  let at = 0;
  for (const f of frames) {
    if (f.tag !== null) out[at++] = f.tag;
    view.setInt32(at, f.length ?? f.body.length + 4);
    out.set(f.body, at + 4);
    at += 4 + f.body.length;
  }
  return out;
}

export function concatBytes(parts: readonly Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

export function hex(bytes: Uint8Array, max = 4096): string {
  const shown = bytes.length > max ? bytes.subarray(0, max) : bytes;
  return Buffer.from(shown).toString("hex") + (bytes.length > max ? `...(+${bytes.length - max} bytes)` : "");
}
