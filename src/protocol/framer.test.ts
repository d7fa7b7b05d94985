import { expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { Framer } from "./framer.ts";
import { Writer } from "./writer.ts";

function collect(framer: Framer, chunks: Uint8Array[]): string[] {
  const out: string[] = [];
  const sink = {
    frame(tag: number, buf: Uint8Array, start: number, end: number) {
      out.push(`${String.fromCharCode(tag)}:${Buffer.from(buf.subarray(start, end)).toString("hex")}`);
    },
  };
  for (const c of chunks) framer.feed(c, sink);
  return out;
}

const two = new Writer().start(0x51).cstr("select 1").end().start(0x53).end().take();

test("frames several messages in one chunk", () => {
  const got = collect(new Framer(1 << 20), [two]);
  expect(got).toEqual([
    "Q:" + Buffer.from(two.subarray(0, 14)).toString("hex"),
    "S:" + Buffer.from(two.subarray(14)).toString("hex"),
  ]);
});

test("frames the same messages split at every byte boundary", () => {
  const whole = collect(new Framer(1 << 20), [two]);
  for (let cut = 1; cut < two.length; cut++) {
    expect(collect(new Framer(1 << 20), [two.subarray(0, cut), two.subarray(cut)])).toEqual(whole);
  }
  const bytes = Array.from(two, (b) => Uint8Array.of(b));
  expect(collect(new Framer(1 << 20), bytes)).toEqual(whole);
});

test("frames untagged startup packets, then switches to tagged messages", () => {
  const startup = new Writer().startUntagged().int32(80877103).end().take();
  const framer = new Framer(1 << 20, true);
  const seen: number[] = [];
  const sink = {
    frame(tag: number, _b: Uint8Array, start: number, end: number) {
      seen.push(tag, end - start);
      framer.startup = false;
    },
  };
  const both = new Uint8Array(startup.length + two.length);
  both.set(startup);
  both.set(two, startup.length);
  framer.feed(both, sink);
  expect(seen).toEqual([0, 8, 0x51, 14, 0x53, 5]);
});

test("rejects a length below 4 and above the maximum", () => {
  expect(() => collect(new Framer(100), [Uint8Array.of(0x51, 0, 0, 0, 3)])).toThrow("invalid message length 3");
  expect(() => collect(new Framer(100), [Uint8Array.of(0x51, 0, 0, 1, 0)])).toThrow("max_packet_size");
  expect(() => collect(new Framer(100, true), [new TextEncoder().encode("GET / HTTP/1.1\r\n")])).toThrow(
    "invalid startup packet length",
  );
});

/** A Query message of `size` bytes in all, its body a byte pattern that shows any misplaced copy. */
function bigQuery(size: number): Uint8Array {
  const m = new Uint8Array(size);
  m[0] = 0x51;
  new DataView(m.buffer).setInt32(1, size - 1);
  for (let i = 5; i < size - 1; i++) m[i] = 1 + (i % 251);
  return m;
}

function frames(framer: Framer, chunks: Uint8Array[]): Array<{ tag: number; bytes: Uint8Array; buf: Uint8Array }> {
  const out: Array<{ tag: number; bytes: Uint8Array; buf: Uint8Array }> = [];
  for (const c of chunks) framer.feed(c, { frame: (tag, buf, start, end) => out.push({ tag, bytes: buf.slice(start, end), buf }) });
  return out;
}

test("a message larger than the first allocation, split at every offset near its start, the growth points and its end", () => {
  const big = bigQuery(200_000);
  const cuts = new Set<number>();
  for (let i = 1; i <= 40; i++) cuts.add(i).add(big.length - i);
  for (const edge of [65_536, 131_072, 196_608]) for (let d = -6; d <= 6; d++) cuts.add(edge + d);
  for (const cut of cuts) {
    const got = frames(new Framer(1 << 20), [big.subarray(0, cut), big.subarray(cut)]);
    expect(got.length).toBe(1);
    expect(Buffer.from(got[0]!.bytes).equals(Buffer.from(big))).toBe(true);
  }
});

test("a large message trickling in small chunks, followed by others in the same chunk, arrives whole and in order", () => {
  const big = bigQuery(150_001);
  const stream = new Uint8Array(big.length + two.length);
  stream.set(big);
  stream.set(two, big.length);
  for (const step of [1, 7, 1000, 4096, 65_537]) {
    const chunks: Uint8Array[] = [];
    // Byte by byte only over the head: 150,000 one-byte chunks would test nothing more, slowly.
    const size = (at: number) => (step === 1 && at > 64 ? 9_999 : step);
    for (let at = 0; at < stream.length; at += size(at)) chunks.push(stream.subarray(at, Math.min(stream.length, at + size(at))));
    const got = frames(new Framer(1 << 20), chunks);
    expect(got.map((f) => [f.tag, f.bytes.length])).toEqual([
      [0x51, big.length],
      [0x51, 14],
      [0x53, 5],
    ]);
    expect(Buffer.from(got[0]!.bytes).equals(Buffer.from(big))).toBe(true);
  }
});

test("whole messages inside one chunk are delivered as views of that chunk, a gathered one in a buffer of its exact length", () => {
  const big = bigQuery(100_000);
  const chunk = new Uint8Array(two.length + 1000);
  chunk.set(two);
  chunk.set(big.subarray(0, 1000), two.length);
  const got = frames(new Framer(1 << 20), [chunk, big.subarray(1000)]);
  expect(got.map((f) => f.buf === chunk)).toEqual([true, true, false]);
  expect(got[2]!.buf.length).toBe(big.length);
});

/** This process's VmSize, in bytes. */
function addressSpace(): number {
  return Number(/^VmSize:\s+(\d+) kB/m.exec(readFileSync("/proc/self/status", "utf8"))?.[1]) * 1024;
}

test("a header declaring a gigabyte holds on to kilobytes, not the gigabyte, until the bytes come", () => {
  const framer = new Framer(2 ** 31 - 1);
  const head = new Uint8Array(4096);
  head[0] = 0x51;
  new DataView(head.buffer).setInt32(1, 1 << 30);
  // Linux hands out untouched pages lazily, so a gigabyte allocated up front shows in the address space first.
  const before = addressSpace();
  const got = frames(framer, [head.subarray(0, 3), head.subarray(3)]);
  expect(got).toEqual([]);
  expect(framer.buffered).toBe(4096);
  expect(addressSpace() - before).toBeLessThan(256 << 20);
});
