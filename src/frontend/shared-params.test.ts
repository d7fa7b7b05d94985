import { expect, test } from "bun:test";
import { parameterStatus } from "../protocol/messages.ts";
import { paramsKeyOf, shareParams } from "./shared-params.ts";

const welcome = new Map([
  ["client_encoding", "UTF8"],
  ["application_name", ""],
]);

test("clients with the same parameters share one map, key and status bytes", () => {
  const a = shareParams(welcome, new Map([["client_encoding", "UTF8"], ["application_name", "app"]]));
  const b = shareParams(welcome, new Map([["client_encoding", "UTF8"], ["application_name", "app"]]));
  expect(b).toBe(a);
  expect(a.key).toBe(paramsKeyOf(a.wanted));
  expect(a.key).toBe("client_encoding=UTF8\u0000application_name=app\u0000");
  expect([...a.status]).toEqual([...parameterStatus("client_encoding", "UTF8"), ...parameterStatus("application_name", "app")]);
});

test("other parameters, or another pool's welcome, get their own", () => {
  const a = shareParams(welcome, new Map([["application_name", "one"]]));
  expect(shareParams(welcome, new Map([["application_name", "two"]]))).not.toBe(a);
  expect(shareParams(new Map(welcome), new Map([["application_name", "one"]]))).not.toBe(a);
});
