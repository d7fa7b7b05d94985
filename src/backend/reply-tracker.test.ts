import { expect, test } from "bun:test";
import { INTERNAL, R_READY, R_SWALLOW, ReplyTracker } from "./reply-tracker.ts";

const c = (s: string) => s.charCodeAt(0);
function send(t: ReplyTracker, tags: string) {
  for (const ch of tags) t.sent(c(ch));
}
function recv(t: ReplyTracker, tags: string, status = "I") {
  let flags = 0;
  for (const ch of tags) flags |= t.received(c(ch), c(status));
  return flags;
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
  expect(recv(t, "Z", "E") & R_READY).toBeTruthy();
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
  expect(recv(t, "C") & R_SWALLOW).toBeTruthy();
  expect(recv(t, "Z") & R_SWALLOW).toBeTruthy();
  expect(recv(t, "T") & R_SWALLOW).toBeFalsy();
});
