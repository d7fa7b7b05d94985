import { expect, test } from "bun:test";
import { changeSql, paramChanges, parseOptions, quoteLiteral } from "./params.ts";

test("no change when the server already matches the client", () => {
  const m = new Map([["TimeZone", "UTC"]]);
  expect(paramChanges(m, new Map(m), new Map())).toEqual([]);
});

test("sets what differs and resets what an earlier client set", () => {
  const wanted = new Map([
    ["TimeZone", "UTC"],
    ["extra_float_digits", "3"],
  ]);
  const reported = new Map([["TimeZone", "Europe/Paris"]]);
  const setByUs = new Map([
    ["extra_float_digits", "3"],
    ["search_path", "other"],
  ]);
  expect(paramChanges(wanted, reported, setByUs)).toEqual([
    { key: "TimeZone", value: "UTC" },
    { key: "search_path", value: null },
  ]);
});

test("quotes values and identifiers safely", () => {
  expect(changeSql({ key: "application_name", value: "it's" })).toBe(`SELECT pg_catalog.set_config('application_name', 'it''s', false)`);
  expect(quoteLiteral("a\\b")).toBe("E'a\\\\b'");
  expect(changeSql({ key: "search_path", value: null })).toBe(`RESET "search_path"`);
});

test("parses -c options as libpq sends them", () => {
  expect([...parseOptions("-c search_path=a,b -cstatement_timeout=5s --geqo=off -c x=a\\ b")]).toEqual([
    ["search_path", "a,b"],
    ["statement_timeout", "5s"],
    ["geqo", "off"],
    ["x", "a b"],
  ]);
});
