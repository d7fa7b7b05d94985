import { describe, expect, test } from "bun:test";
import type { PoolMode } from "../config/schema.ts";
import { releaseDecision, type ServerProtocolState } from "./release-policy.ts";

const quiet: ServerProtocolState = { txStatus: "I", owed: 0, inExtended: false, skipTillSync: false, copy: "none" };

type Row = [PoolMode, Partial<ServerProtocolState>, string];

const table: Row[] = [
  // session mode never releases while the client is connected
  ["session", {}, "keep"],
  ["session", { txStatus: "T" }, "keep"],
  ["session", { owed: 2 }, "keep"],
  // transaction mode: idle and nothing owed is the only release
  ["transaction", {}, "release"],
  ["transaction", { txStatus: "T" }, "keep"],
  ["transaction", { txStatus: "E" }, "keep"],
  ["transaction", { owed: 1 }, "keep"],
  ["transaction", { owed: 1, txStatus: "T" }, "keep"],
  ["transaction", { inExtended: true }, "keep"],
  ["transaction", { skipTillSync: true }, "keep"],
  ["transaction", { copy: "in" }, "keep"],
  ["transaction", { copy: "out" }, "keep"],
  ["transaction", { copy: "in", txStatus: "T" }, "keep"],
  // statement mode: released after every statement, a block left open is refused
  ["statement", {}, "release"],
  ["statement", { txStatus: "T" }, "refuse"],
  ["statement", { txStatus: "E" }, "refuse"],
  ["statement", { owed: 1 }, "keep"],
  ["statement", { owed: 1, txStatus: "T" }, "keep"],
  ["statement", { inExtended: true }, "keep"],
  ["statement", { copy: "in" }, "keep"],
  ["statement", { copy: "out" }, "keep"],
  ["statement", { skipTillSync: true, txStatus: "E" }, "keep"],
];

describe("releaseDecision", () => {
  for (const [mode, over, want] of table) {
    test(`${mode} with ${JSON.stringify(over)} -> ${want}`, () => {
      expect(releaseDecision(mode, { ...quiet, ...over })).toBe(want as ReturnType<typeof releaseDecision>);
    });
  }
});
