import { expect, test } from "bun:test";
import { listenOps } from "./listen-sql.ts";

test("LISTEN and UNLISTEN are found with PostgreSQL's name folding", () => {
  expect(listenOps("LISTEN Foo")).toEqual([{ listen: true, channel: "foo" }]);
  expect(listenOps('listen "Foo ""x"""')).toEqual([{ listen: true, channel: 'Foo "x"' }]);
  expect(listenOps("UNLISTEN *;")).toEqual([{ listen: false, channel: "*" }]);
  expect(listenOps("unlisten a; listen b")).toEqual([
    { listen: false, channel: "a" },
    { listen: true, channel: "b" },
  ]);
});

test("other SQL holds none, even when it mentions the words", () => {
  expect(listenOps("SELECT 1")).toBeNull();
  expect(listenOps("SELECT 'listen x'")).toBeNull();
  expect(listenOps("NOTIFY listen")).toBeNull();
  expect(listenOps("SELECT 1; SELECT ';listen a'")).toBeNull();
});
