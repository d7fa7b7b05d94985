import { expect, test } from "bun:test";
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
