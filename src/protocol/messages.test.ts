import { expect, test } from "bun:test";
import { backendKeyData, errorResponse, parameterStatus, parseErrorFields, parseStartup, query, readyForQuery, startupMessage } from "./messages.ts";

const hex = (b: Uint8Array) => Buffer.from(b).toString("hex");

test("ReadyForQuery, ParameterStatus, BackendKeyData and Query have exact bytes", () => {
  expect(hex(readyForQuery(0x49))).toBe("5a0000000549");
  expect(hex(parameterStatus("a", "b"))).toBe("53" + "00000008" + "6100" + "6200");
  expect(hex(backendKeyData(1, -1))).toBe("4b" + "0000000c" + "00000001" + "ffffffff");
  expect(hex(query("x"))).toBe("51" + "00000006" + "7800");
});

test("ErrorResponse carries severity, code and message, and parses back", () => {
  const e = errorResponse({ severity: "FATAL", code: "28P01", message: "no" });
  const f = parseErrorFields(e, 0, e.length);
  expect([f.get("S"), f.get("C"), f.get("M")]).toEqual(["FATAL", "28P01", "no"]);
});

test("StartupMessage round-trips and SSLRequest is recognised", () => {
  const s = startupMessage({ user: "u", database: "d" });
  expect(hex(s.subarray(4, 8))).toBe("00030000");
  const p = parseStartup(s, 0, s.length);
  expect(p.kind === "startup" && [...p.params]).toEqual([
    ["user", "u"],
    ["database", "d"],
  ]);
  expect(parseStartup(Uint8Array.of(0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f), 0, 8).kind).toBe("ssl");
});
