import { expect, test } from "bun:test";
import { FORWARD, INTERNAL, REPLACE, ReplacedError, ReplyTracker, SWALLOW } from "./reply-tracker.ts";

const c = (s: string) => s.charCodeAt(0);
function send(t: ReplyTracker, tags: string) {
  for (const ch of tags) t.sent(c(ch));
}
/** Receives each tag; returns the action for the last. */
function recv(t: ReplyTracker, tags: string, status = "I") {
  let action = FORWARD as number;
  for (const ch of tags) action = t.received(c(ch), c(status));
  return action;
}

test("a pipeline of two Syncs is owed until both ReadyForQuery arrive", () => {
  const t = new ReplyTracker();
  send(t, "PBESPBES");
  expect(t.owed).toBe(8);
  recv(t, "12DCZ");
  expect(t.owed).toBe(4);
  expect(t.quiet).toBe(false);
  recv(t, "12DCZ");
  expect(t.quiet).toBe(true);
});

test("Flush without Sync leaves the extended sequence open even when every reply is in", () => {
  const t = new ReplyTracker();
  send(t, "PBEH");
  recv(t, "12DC");
  expect(t.owed).toBe(0);
  expect(t.quiet).toBe(false);
  send(t, "S");
  recv(t, "Z");
  expect(t.quiet).toBe(true);
});

test("an extended-protocol error skips to the Sync; without a Sync in flight it waits for one", () => {
  const t = new ReplyTracker();
  send(t, "PBEQ");
  recv(t, "E");
  expect(t.owed).toBe(0);
  expect(t.skipTillSync).toBe(true);
  send(t, "PBE"); // discarded by PostgreSQL
  expect(t.owed).toBe(0);
  send(t, "S");
  recv(t, "Z");
  expect(t.quiet).toBe(true);
});

test("an error inside a simple Query waits for its ReadyForQuery", () => {
  const t = new ReplyTracker();
  send(t, "Q");
  recv(t, "CE");
  expect(t.owed).toBe(1);
  expect(recv(t, "Z", "E")).toBe(FORWARD);
  expect(t.txStatus).toBe(c("E"));
});

test("Syncs sent during COPY IN are ignored, as PostgreSQL ignores them", () => {
  const t = new ReplyTracker();
  send(t, "PBES");
  recv(t, "12G");
  expect(t.copy).toBe("in");
  send(t, "ddcS");
  recv(t, "CZ");
  expect(t.quiet).toBe(true);
});

test("replies to internal requests are marked to be swallowed", () => {
  const t = new ReplyTracker();
  t.sent(c("Q"), INTERNAL);
  send(t, "Q");
  expect(recv(t, "C")).toBe(SWALLOW);
  expect(recv(t, "Z")).toBe(SWALLOW);
  expect(recv(t, "T")).toBe(FORWARD);
});

test("a made-up reply waits in the queue for the replies owed before it, then is taken in order", () => {
  const t = new ReplyTracker();
  send(t, "PB");
  const reply = { bytes: () => Uint8Array.of(0x33, 0, 0, 0, 4) };
  expect(t.madeUp(reply)).toBe(true);
  send(t, "ES");
  recv(t, "1");
  expect(t.nextMadeUp()).toBeNull();
  recv(t, "2");
  expect(t.nextMadeUp()).toBe(reply);
  expect(t.nextMadeUp()).toBeNull();
  recv(t, "CZ");
  expect(t.quiet).toBe(true);
});

test("an error skips the made-up replies and attachments before the Sync, telling each it was skipped", () => {
  const t = new ReplyTracker();
  const seen: string[] = [];
  t.sent(c("P"), 0, { answered: () => seen.push("parse answered"), skipped: () => seen.push("parse skipped") });
  t.sent(c("B"), 0, { answered: () => seen.push("bind answered"), skipped: () => seen.push("bind skipped") });
  t.madeUp({ bytes: () => new Uint8Array(0), skipped: () => seen.push("made-up skipped") });
  send(t, "S");
  recv(t, "1");
  recv(t, "E");
  expect(seen).toEqual(["parse answered", "bind skipped", "made-up skipped"]);
  expect(t.nextMadeUp()).toBeNull();
  recv(t, "Z");
  expect(t.quiet).toBe(true);
});

test("a request meant to fail has its error replaced by the attached one", () => {
  const t = new ReplyTracker();
  const err = new ReplacedError(Uint8Array.of(1, 2, 3));
  t.sent(c("B"), 0x20, err);
  send(t, "S");
  expect(recv(t, "E")).toBe(REPLACE);
  expect(t.headAttachment).toBe(err);
  expect(recv(t, "Z")).toBe(FORWARD);
});

test("after an error with no Sync in flight, requests are not queued until the Sync (PostgreSQL discards them)", () => {
  const t = new ReplyTracker();
  send(t, "P");
  recv(t, "E");
  expect(t.sent(c("B"), 0, { skipped: () => {} })).toBe(false);
  expect(t.madeUp({ bytes: () => new Uint8Array(0) })).toBe(false);
  expect(t.sent(c("S"))).toBe(true);
  expect(t.owed).toBe(1);
});

test("a Sync sent after CopyDone, while COPY's own replies are still coming, is answered and owed", () => {
  const t = new ReplyTracker();
  send(t, "Q");
  recv(t, "G");
  expect(t.copy).toBe("in");
  send(t, "ddcSQ");
  recv(t, "CZ");
  expect(t.quiet).toBe(false);
  recv(t, "Z");
  expect(t.quiet).toBe(false);
  recv(t, "TDCZ");
  expect(t.quiet).toBe(true);
});

test("CopyDone pipelined before CopyInResponse: a Sync sent afterwards is answered and owed", () => {
  const t = new ReplyTracker();
  send(t, "PBESdc");
  recv(t, "12G");
  send(t, "SQ");
  recv(t, "C");
  recv(t, "Z");
  expect(t.quiet).toBe(false);
  recv(t, "CTDCZ");
  expect(t.quiet).toBe(true);
});

test("a COPY that fails with Syncs pipelined into its data leaves replies that cannot be matched: the tracker says so", () => {
  const t = new ReplyTracker();
  send(t, "PBESdS");
  recv(t, "12G");
  expect(t.lost).toBe(false);
  recv(t, "E");
  expect(t.lost).toBe(true);
  const ok = new ReplyTracker();
  send(ok, "PBESdc");
  recv(ok, "12GC");
  expect(ok.lost).toBe(false);
});

test("a reply when nothing is owed is unexpected, unless PostgreSQL sends it on its own", () => {
  const t = new ReplyTracker();
  for (const tag of "ZDCT12") expect(t.unexpected(c(tag), false)).toBe(true);
  expect(t.unexpected(c("E"), false)).toBe(true);
  expect(t.unexpected(c("E"), true)).toBe(false);
  for (const tag of "SNA") expect(t.unexpected(c(tag), false)).toBe(false);
  send(t, "Q");
  expect(t.unexpected(c("Z"), false)).toBe(false);
});
